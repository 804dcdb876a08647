"""An invented group chat (no real people) for report and browser tests.

Six weeks of a 私域运营 group whose on-topic activity fades, with questions, ads, floods,
system notices and a few hostile texts (HTML/script) to prove escaping.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from classifier.records import Message

GROUP = "私域运营交流群"
TOPIC = "私域 运营 转化 社群"
MEMBERS = ["林小雨", "周一鸣", "陈果果", "运营阿杰", "吴小满", "郑可可", "王大锤", "赵晓晓", "钱多多",
           "孙悟饭", "李青青", "何夕", "马小跳", "冯一一", "褚半夏"]
AD_SENDERS = ["推广号A", "<b>evil</b>"]
ON_TOPIC = ["私域转化最近掉得厉害，我们在试分层触达", "社群早晚各推一次效果更好", "运营日报我们用表格自动汇总",
            "转化漏斗要先看加粉率", "私域的复购靠会员日", "社群活跃靠固定栏目", "运营节奏按周排"]
QUESTIONS_ON = ["私域转化率一般怎么算？", "社群冷启动先做什么？", "运营周报大家都看哪些指标？"]
QUESTIONS_OFF = ["今晚吃啥？", "周末有人去爬山吗？"]
OFF = ["早上好", "哈哈哈", "收到", "[表情]", "今晚吃火锅吗", "下雨了"]
ADS = ["加V：abc123 免费领资料", "扫码进群领券", "私聊我 一件代发"]
HOSTILE = ["<script>alert('x')</script>转化怎么做？", "<img src=x onerror=alert(1)>私域 运营"]


def sample_messages(seed: int = 7) -> list[Message]:
    rng = random.Random(seed)
    start = datetime(2024, 12, 16, 8, 0)  # Monday; spans the 2024/2025 ISO year boundary
    out: list[Message] = []
    n = 0
    for day in range(42):
        per_day = max(3, 40 - day)  # fading group
        for _ in range(per_day):
            n += 1
            t = start + timedelta(days=day, minutes=rng.randint(0, 14 * 60))
            r = rng.random()
            sender = rng.choice(MEMBERS[: max(4, 15 - day // 3)])
            if r < 0.05:
                sender, text = rng.choice(AD_SENDERS), rng.choice(ADS)
            elif r < 0.15:
                text = rng.choice(QUESTIONS_ON)
            elif r < 0.18:
                text = rng.choice(QUESTIONS_OFF)
            elif r < 0.50 - day * 0.008:
                text = rng.choice(ON_TOPIC)
            else:
                text = rng.choice(OFF)
            out.append(Message(group=GROUP, sender=sender, sender_id="", time=t, text=text, msg_id=str(n)))
        if day % 9 == 0:
            who = rng.choice(MEMBERS)
            out.append(Message(group=GROUP, time=start + timedelta(days=day, hours=15),
                               text=f"{who} 加入了群聊", kind="system"))
    out.sort(key=lambda m: m.time)
    out.append(Message(group=GROUP, sender="何夕", time=start + timedelta(days=41, hours=22),
                       text="@林小雨 @周一鸣 " + HOSTILE[0]))
    out.append(Message(group=GROUP, sender="<b>evil</b>", time=start + timedelta(days=41, hours=22, minutes=1),
                       text=HOSTILE[1] + " 加V"))
    return out
