"""Embedding throughput on the CPU: lightembed vs WordLlama vs model2vec vs the tokenizer alone.

Every engine embeds the same real texts (train-allowed files of the shared data folder, mixed
lengths, shuffled with a fixed seed) at the same dimension (256). Each engine lives in its own
fresh Python process (model2vec turns tokenizer parallelism off for its whole process); all are
loaded at once, each makes one untimed warm-up call, and then their `--repeats` timed calls are
interleaved (lightembed, WordLlama, model2vec, tokenizer, then the next cycle with the order
rotated), so that the slow phases of a shared virtual machine hit every engine alike. Reported:
best-of texts/s, median texts/s, and speed ratios both best-of over best-of and as the median of
the per-cycle time ratios (each target must hold on both).

- lightembed: `lightembed.load(model).embed(texts)` (the bundled default model).
- WordLlama: l2_supercat at 256 dims, `WordLlama.load(cache_dir=D, disable_download=True).embed(texts, norm=True)`,
  D/tokenizers/ holding a copy of the tokenizer file shipped inside the wordllama package
  (WordLlama looks for it in `wordllama/tokenizer/`, a folder that does not exist, so it is never found offline).
- model2vec: `StaticModel.from_pretrained(copy).encode(texts)` with its threaded mode on (the default for
  more than 10,000 texts), on a model2vec-format copy of the *same* codebook and tokenizer as lightembed's
  model, so that only the engines differ.
- tokenizer alone: `Tokenizer.from_file(<model>/tokenizer.json)`, truncation 512, no padding,
  `encode_batch_fast(batch, add_special_tokens=False)` in lightembed's batch size, ids extracted.
  This is the floor for any engine that uses this tokenizer.

Also measured: the model's load time (fresh process: `import lightembed`, then `lightembed.load()`), best of 3.

Usage:
    .venv/bin/python benchmarks/throughput.py                 # all engines, writes benchmarks/results/throughput.json
    .venv/bin/python benchmarks/throughput.py --engines lightembed tokenizer --repeats 5
The data folder is $LIGHTEMBED_DATA, else ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SCRIPT = Path(__file__).resolve()
ENGINES = ("lightembed", "wordllama", "model2vec", "tokenizer")
DIM = 256


# --------------------------------------------------------------------------- the texts
def build_texts(data: Path, sst: int, seed: int) -> tuple[list[str], dict[str, int]]:
    """Real train-allowed texts of mixed length, shuffled with `seed`.

    All distinct SNLI dev sentences, Quora dev questions, WikiQA train answers, SciFact corpus
    documents (title + abstract, long), and `sst` SST train phrases sampled with `seed`.
    """
    rng = common.seeded(seed)
    parts = common.unique_texts(
        [
            ("snli_devtest s1.dev+s2.dev", common.snli_dev),
            ("quora_pairs_bimpm/dev.txt questions", common.quora_dev),
            ("wikiqa/train.txt answers", common.wikiqa_train_answers),
            ("scifact/corpus_train.csv title+abstract", common.scifact_documents),
            ("SST/Binary/sentiment-train", common.sst_train),
        ],
        data,
    )
    sst_key = "SST/Binary/sentiment-train"
    parts[sst_key] = rng.sample(parts[sst_key], min(sst, len(parts[sst_key])))
    texts = [t for group in parts.values() for t in group]
    rng.shuffle(texts)
    return texts, {k: len(v) for k, v in parts.items()}


def write_model2vec_copy(model_dir: Path, out: Path) -> Path:
    """A model2vec folder holding lightembed's codebook (float32) and tokenizer, unchanged."""
    import numpy as np
    from safetensors.numpy import save_file

    import lightembed

    parts = lightembed.read_model(model_dir)
    if parts.transform or parts.token_rows is not None:
        raise SystemExit(f"{model_dir}: has layers after pooling; a model2vec copy would not be the same model")
    out.mkdir(parents=True, exist_ok=True)
    embeddings = np.ascontiguousarray(parts.embeddings, dtype=np.float32)
    save_file({"embeddings": embeddings}, str(out / "model.safetensors"))
    shutil.copyfile(model_dir / "tokenizer.json", out / "tokenizer.json")
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "hidden_dim": int(embeddings.shape[1]),
        "normalize": True,
        "max_length": int(parts.config.max_length),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


def write_wordllama_cache(out: Path) -> Path:
    """A WordLlama cache folder with the tokenizer file copied from the installed package."""
    import wordllama

    source = Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"
    (out / "tokenizers").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out / "tokenizers" / source.name)
    return out


# --------------------------------------------------------------------------- workers (fresh processes)
def make_call(args: argparse.Namespace, texts: list[str], info: dict[str, Any]) -> Any:
    """Load one engine and return the zero-argument call that embeds all `texts` with it."""
    if args.worker == "lightembed":
        import lightembed

        model = lightembed.load(args.model)
        info.update(batch_size=model.batch_size, dim=model.dim, call="lightembed.load().embed(texts)")
        return lambda: model.embed(texts)
    if args.worker == "wordllama":
        from wordllama import WordLlama

        wl = WordLlama.load("l2_supercat", dim=DIM, cache_dir=args.wordllama_cache, disable_download=True)
        info["call"] = (
            "WordLlama.load('l2_supercat', dim=256, cache_dir=D, disable_download=True).embed(texts, norm=True)"
        )
        return lambda: wl.embed(texts, norm=True)
    if args.worker == "model2vec":
        from model2vec import StaticModel

        m2v = StaticModel.from_pretrained(args.model2vec_dir)
        info["call"] = "StaticModel.from_pretrained(copy).encode(texts, use_multiprocessing=True)"
        info["max_length"] = m2v.max_length
        info["char_precut"] = m2v.max_length * m2v.median_token_length if m2v.max_length else None
        return lambda: m2v.encode(texts, use_multiprocessing=True)
    if args.worker == "tokenizer":
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(args.model) / "tokenizer.json"))
        tokenizer.enable_truncation(512)
        tokenizer.no_padding()
        size = args.batch_size
        info["batch_size"] = size
        info["call"] = "Tokenizer.encode_batch_fast(batch, add_special_tokens=False), ids extracted"

        def call() -> list[list[int]]:
            ids = []
            for start in range(0, len(texts), size):
                encodings = tokenizer.encode_batch_fast(texts[start : start + size], add_special_tokens=False)
                ids.extend([e.ids for e in encodings])
            return ids

        return call
    raise SystemExit(f"unknown worker {args.worker!r}")


def serve(args: argparse.Namespace) -> None:
    """Load one engine, then obey commands on stdin, one per line: `warmup`, `run` (timed), `quit`.

    Every answer is one JSON line on stdout. The driver keeps one such process per engine and
    interleaves their timed calls, so a slow phase of the shared machine hits every engine alike.
    """
    texts = common.read_lines(Path(args.texts))
    info: dict[str, Any] = {"engine": args.worker, "texts": len(texts)}
    start = time.perf_counter()
    call = make_call(args, texts, info)
    info["load_s"] = time.perf_counter() - start
    common.emit({"ready": True})
    result = None
    for line in sys.stdin:
        command = line.strip()
        if command == "warmup":
            result = call()
            common.emit({"ok": True})
        elif command == "run":
            start = time.perf_counter()
            result = call()
            common.emit({"time_s": time.perf_counter() - start})
        elif command == "quit":
            break
    info["peak_rss_mb"] = common.peak_rss_mb()
    if args.worker == "tokenizer" and result is not None:
        info["tokens"] = int(sum(len(ids) for ids in result))
    elif args.save and result is not None:
        import numpy as np

        np.save(args.save, np.asarray(result, dtype=np.float32))
    common.emit(info)


class Engine:
    """A served worker process for one engine."""

    def __init__(self, name: str, worker_args: list[str]) -> None:
        self.name = name
        cmd = [sys.executable, str(SCRIPT), "--worker", name, "--serve", *worker_args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=common.clean_env(), cwd=common.REPO_ROOT
        )
        self.times: list[float] = []
        self.ask(None)  # wait until loaded

    def ask(self, command: str | None) -> dict[str, Any]:
        """Send a command (None: just read) and return the JSON answer."""
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} worker exited (code {self.proc.wait()})")
            if line.strip().startswith("{"):
                return json.loads(line)

    def finish(self) -> dict[str, Any]:
        """Ask the worker for its summary and wait for it to exit."""
        info = self.ask("quit")
        self.proc.wait()
        return info


def load_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Import time and `lightembed.load()` time in this fresh process."""
    start = time.perf_counter()
    import lightembed

    imported = time.perf_counter()
    model = lightembed.load(args.model) if args.model else lightembed.load()
    loaded = time.perf_counter()
    model.embed("warm")  # first call after load (thread pool start, first tokenisation)
    first = time.perf_counter()
    return {
        "import_s": imported - start,
        "load_s": loaded - imported,
        "first_embed_s": first - loaded,
        "peak_rss_mb": common.peak_rss_mb(),
    }


# --------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--model", default=None, help="lightembed model folder (default: the bundled weights/default)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed calls per engine after one warm-up, interleaved across engines (default 5)",
    )
    parser.add_argument("--sst", type=int, default=9000, help="SST train phrases to add (default 9000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--load-repeats", type=int, default=3, help="fresh processes for the load time (0 to skip)")
    parser.add_argument(
        "--max-busy", type=float, default=0.2, help="wait until the CPU is at most this busy before starting"
    )
    parser.add_argument("--quiet-timeout", type=float, default=180.0, help="longest wait for a quiet CPU, seconds")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "throughput.json")
    # worker-only arguments
    parser.add_argument("--worker", choices=(*ENGINES, "load"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--model2vec-dir", help=argparse.SUPPRESS)
    parser.add_argument("--wordllama-cache", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "load":
        common.emit(load_worker(args))
        return 0
    if args.worker:
        serve(args)
        return 0

    import numpy as np

    import lightembed
    from lightembed.model import DEFAULT_BATCH_SIZE
    from lightembed.resolve import resolve_model

    model_dir = Path(resolve_model(args.model))
    data = common.data_dir()
    common.check_data(data)
    texts, sources = build_texts(data, args.sst, args.seed)
    chars = sum(map(len, texts))
    print(f"{len(texts)} texts, {chars / len(texts):.0f} chars on average; model {model_dir}", file=sys.stderr)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lightembed_bench_") as tmp_name:
        tmp = Path(tmp_name)
        texts_file = tmp / "texts.txt"
        common.write_lines(texts_file, texts)
        m2v_dir = write_model2vec_copy(model_dir, tmp / "model2vec_copy")
        wl_cache = write_wordllama_cache(tmp / "wordllama_cache")
        base = ["--texts", str(texts_file), "--model", str(model_dir)]
        extra = {
            "lightembed": ["--save", str(tmp / "lightembed.npy")],
            "wordllama": ["--wordllama-cache", str(wl_cache)],
            "model2vec": ["--model2vec-dir", str(m2v_dir), "--save", str(tmp / "model2vec.npy")],
            "tokenizer": ["--batch-size", str(DEFAULT_BATCH_SIZE)],
        }
        engines = {name: Engine(name, [*base, *extra[name]]) for name in args.engines}
        busy_at_start = round(common.wait_for_quiet(args.max_busy, args.quiet_timeout), 3)
        for engine in engines.values():
            print(f"warm-up: {engine.name}", file=sys.stderr)
            engine.ask("warmup")
        order = list(engines)
        for cycle in range(args.repeats):
            # Rotate the order every cycle so that no engine always runs right after another.
            for name in order[cycle % len(order) :] + order[: cycle % len(order)]:
                seconds = engines[name].ask("run")["time_s"]
                engines[name].times.append(seconds)
                print(
                    f"cycle {cycle + 1}: {name} {seconds:.3f}s ({len(texts) / seconds:,.0f} texts/s)", file=sys.stderr
                )
        for name, engine in engines.items():
            info = engine.finish()
            times = engine.times
            info.update(
                times_s=times,
                best_s=min(times),
                median_s=float(np.median(times)),
                texts_per_s=len(texts) / min(times),
                texts_per_s_median=len(texts) / float(np.median(times)),
            )
            results[name] = info
        agreement = None
        if (tmp / "lightembed.npy").exists() and (tmp / "model2vec.npy").exists():
            a, b = np.load(tmp / "lightembed.npy"), np.load(tmp / "model2vec.npy")
            cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
            agreement = {
                "mean_cosine": float(cos.mean()),
                "min_cosine": float(cos.min()),
                "rows_below_0.9999": int((cos < 0.9999).sum()),
            }

    load_times = []
    for _ in range(args.load_repeats):
        load_times.append(common.run_worker(SCRIPT, ["--worker", "load", "--model", args.model or ""]))

    ratios: dict[str, float] = {}
    paired: dict[str, float] = {}
    if "lightembed" in results:
        le = results["lightembed"]
        for other in ("wordllama", "model2vec", "tokenizer"):
            if other in results:
                key = f"lightembed/{other}"
                ratios[key] = le["texts_per_s"] / results[other]["texts_per_s"]
                # Same cycle, adjacent in time: robust to slow phases of a shared machine.
                per_cycle = [o / t for t, o in zip(le["times_s"], results[other]["times_s"])]
                paired[key] = float(np.median(per_cycle))
    limits = {
        "lightembed/wordllama": (2.0, ">="),
        "lightembed/model2vec": (1.0, ">"),
        "lightembed/tokenizer": (0.85, ">="),
    }
    targets = {}
    for key, (limit, op) in limits.items():
        if key in ratios:
            best_ok = ratios[key] >= limit if op == ">=" else ratios[key] > limit
            paired_ok = paired[key] >= limit if op == ">=" else paired[key] > limit
            targets[f"{key} {op} {limit}"] = {
                "best_of": ratios[key],
                "median_paired": paired[key],
                "met": best_ok and paired_ok,
            }
    load_summary = None
    if load_times:
        load_summary = {
            "import_s_best": min(r["import_s"] for r in load_times),
            "load_s_best": min(r["load_s"] for r in load_times),
            "first_embed_s_best": min(r["first_embed_s"] for r in load_times),
            "runs": load_times,
        }
    tokens = results.get("tokenizer", {}).get("tokens")
    payload = {
        "benchmark": "throughput",
        "command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": common.machine_info(),
        "model": str(
            model_dir.relative_to(common.REPO_ROOT) if model_dir.is_relative_to(common.REPO_ROOT) else model_dir
        ),
        "model_files": common.model_fingerprint(model_dir),
        "model_config_dim": lightembed.read_model(model_dir).config.dim,
        "dataset": {"texts": len(texts), "chars": chars, "tokens": tokens, "sources": sources, "seed": args.seed},
        "method": {
            "repeats": args.repeats,
            "warmup": "one untimed call on all texts per engine before the timed calls",
            "process": "one fresh subprocess per engine, all loaded at once; timed calls interleaved across "
            "engines (cycle order rotated), so slow phases of the shared machine hit every engine",
            "ratios": "best_of: best texts/s over best texts/s; median_paired: median over cycles of the "
            "time ratio within the same cycle",
            "cpu_busy_at_start": busy_at_start,
        },
        "results": results,
        "ratios_best_of": ratios,
        "ratios_median_paired": paired,
        "targets": targets,
        "lightembed_vs_model2vec_vectors": agreement,
        "load": load_summary,
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(render(payload))
    print(f"\nwritten: {out}", file=sys.stderr)
    return 0


def render(payload: dict[str, Any]) -> str:
    """The markdown summary of a results payload."""
    machine = payload["machine"]
    ds = payload["dataset"]
    method = payload["method"]
    lines = [
        f"### Throughput ({machine['date']}, {machine['cores']}-core {machine['cpu']})",
        "",
        f"{ds['texts']:,} texts, {ds['chars'] / ds['texts']:.0f} chars on average"
        + (f", {ds['tokens']:,} tokens" if ds.get("tokens") else "")
        + f"; dim {DIM}; one fresh process per engine, a warm-up call, then {method['repeats']} timed calls "
        "interleaved across engines.",
        "",
    ]
    names = {
        "lightembed": "lightembed `embed`",
        "wordllama": "WordLlama l2_supercat 256 `embed`",
        "model2vec": "model2vec `encode` (same codebook + tokenizer)",
        "tokenizer": "tokenizer alone (`encode_batch_fast`)",
    }
    rows = []
    for engine, info in payload["results"].items():
        key = f"lightembed/{engine}"
        best = f"{payload['ratios_best_of'][key]:.2f}x" if key in payload["ratios_best_of"] else ""
        paired = f"{payload['ratios_median_paired'][key]:.2f}x" if key in payload["ratios_median_paired"] else ""
        rows.append(
            [
                names[engine],
                f"{info['texts_per_s']:,.0f}",
                f"{info['texts_per_s_median']:,.0f}",
                f"{info['best_s']:.3f}",
                f"{info['peak_rss_mb']:.0f}",
                best,
                paired,
            ]
        )
    lines.append(
        common.markdown_table(
            [
                "engine",
                "texts/s (best)",
                "texts/s (median)",
                "best s",
                "peak RSS MiB",
                "lightembed speed ratio (best)",
                "(median paired)",
            ],
            rows,
        )
    )
    lines.append("")
    for key, t in payload["targets"].items():
        lines.append(
            f"- target {key}: best-of {t['best_of']:.2f}, median paired {t['median_paired']:.2f} -> "
            f"{'met' if t['met'] else 'MISSED'}"
        )
    agreement = payload.get("lightembed_vs_model2vec_vectors")
    if agreement:
        lines.append(
            f"- lightembed vs model2vec vectors: mean cosine {agreement['mean_cosine']:.6f}, "
            f"min {agreement['min_cosine']:.6f} (same model, different engines)"
        )
    load = payload.get("load")
    if load:
        lines.append(
            f"- default model load: `lightembed.load()` {load['load_s_best'] * 1000:.0f} ms "
            f"(`import lightembed` {load['import_s_best'] * 1000:.0f} ms, first embed call "
            f"{load['first_embed_s_best'] * 1000:.1f} ms), best of {len(load['runs'])} fresh processes"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
