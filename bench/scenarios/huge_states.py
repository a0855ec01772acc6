"""5, second part: 10 and 30 MiB states through the runner's store (chunked), byte for byte,
one end-to-end `runner run` at the largest size, and the seed's two save lines failing at it."""

from __future__ import annotations

import json
import re
import time

from common import MIB, Series, fake_tfstate, mb, ms, run_timed
from harness import BIG, OPEN_LOCK_RESTORE, Bench, Run, make_world, progress


def huge_states(b: Bench) -> None:
    iterations = b.huge_rounds
    handled = True
    figures = []
    for size in b.huge_sizes:
        label = f"{size // MIB} MiB"
        progress(f"{label} state: in-process store x{iterations}, seed's kubectl save")
        payload = fake_tfstate(size, seed=size)
        name = f"runner-huge-{size // MIB}"
        store = b.store()
        ref = b.ref(name)
        load_s, save_s = Series(), Series()
        load_req = save_req = 0
        current = payload
        try:
            store.save(ref, {"tfstate": payload})  # untimed: the first save creates the chunks
            for i in range(iterations):
                b.api.reset_counts()
                t0 = time.perf_counter()
                loaded = store.load(ref)
                t1 = time.perf_counter()
                load_req = len(b.api.requests())
                ok = loaded is not None and loaded.files["tfstate"] == current
                version = loaded.version if loaded is not None else None
                del loaded
                handled = handled and ok
                current = current + f"applied {i}\n".encode()
                b.api.reset_counts()
                t2 = time.perf_counter()
                store.save(ref, {"tfstate": current}, expected=version)
                t3 = time.perf_counter()
                save_req = len(b.api.requests())
                load_s.add(t1 - t0)
                save_s.add(t3 - t2)
            final = store.load(ref)
            handled = handled and final is not None and final.files["tfstate"] == current
            del final
        finally:
            store.close()
        main = b.configmap(f"{name}-state") or {}
        manifest = json.loads((main.get("data") or {}).get("manifest", "{}") or "{}")
        compressed = manifest.get("size")
        chunk_note = (
            f"{manifest.get('chunks')} chunks, gzip {size / compressed:.1f}:1"
            if compressed
            else "not chunked?"
        )
        seed_short, seed_detail = seed_save_huge(b, size, payload)
        b.add(
            f"{label} restore, in process",
            ms(load_s.median),
            "-",
            "",
            f"{size / MIB / load_s.median:.0f} MiB/s, {load_req} requests",
        )
        b.add(
            f"{label} save, in process",
            ms(save_s.median),
            "-",
            "",
            f"{size / MIB / save_s.median:.0f} MiB/s, {save_req} requests, {chunk_note}",
        )
        b.add(
            "  seed's create + replace --force",
            "",
            "FAILS" if seed_short else "ok",
            "",
            seed_short or "the seed stored it?!",
        )
        b.notes.append(f"seed at {label}: {seed_detail}")
        figures.append(
            f"{label}: save {size / MIB / save_s.median:.0f} MiB/s, restore "
            f"{size / MIB / load_s.median:.0f} MiB/s"
        )
        if size == b.huge_sizes[-1]:
            e2e = huge_end_to_end(b, name, current, label)
            handled = handled and e2e is not None
            if e2e is not None:
                figures.append(f"runner run end to end ok, peak RSS {mb(b.rss_huge)}")
    b.goal(
        f"{b.huge_sizes[-1] // MIB} MiB handled",
        handled,
        ("byte-exact round trips" if handled else "NOT byte-exact")
        + "; "
        + "; ".join(figures)
        + "; the seed's approach fails (notes)",
    )


def huge_end_to_end(b: Bench, name: str, stored: bytes, label: str) -> Run | None:
    """`runner run` on a world whose stored state is the in-process section's last one: each
    run restores it, appends a line and saves it (a new chunk generation)."""
    world = make_world(b.tmp, name)
    count = b.huge_rounds
    progress(f"{label} state: runner run end to end x{count}")
    runs = [b.run_runner(world, "runner-huge") for _ in range(count)]
    text = b.stored_text(world.state_name)
    ok = (
        text is not None
        and text.startswith(stored)
        and text.count(b"\napplied ") == stored.count(b"\napplied ") + count
    )
    del text
    wall = Series([r.timed.wall for r in runs])
    rss = Series([r.timed.hwm_kb for r in runs])  # VmHWM: see the 0.9 MiB rows
    restore = Series([r.phases.get(OPEN_LOCK_RESTORE, float("nan")) for r in runs])
    save = Series([r.phases.get("save + unlock", float("nan")) for r in runs])
    b.add(
        f"{label} end to end: runner run",
        ms(wall.median),
        "",
        "",
        f"restore {ms(restore.median)}, save {ms(save.median)}" + ("" if ok else "; STATE WRONG"),
    )
    b.add("  runner peak RSS (VmHWM)", mb(rss.median), "", "", "")
    b.rss_huge = rss.median
    return runs[-1] if ok else None


def seed_save_huge(b: Bench, size: int, payload: bytes) -> tuple[str, str]:
    """The seed script's last two lines with a state that outgrew a ConfigMap. Its ConfigMap
    exists beforehand (the state grew since the last run): `replace --force` deletes it first.
    (a short verdict, empty if it worked; the whole story)"""
    world = make_world(b.tmp, f"seed-huge-{size // MIB}")
    b.seed_configmap(world, fake_tfstate(BIG, seed=3))
    (world.terraform / "state.tfstate").write_bytes(payload)
    env = b.seed_env(world, world.root / "kube-cache", world.root / "times")
    create = run_timed(
        [
            "kubectl",
            "create",
            "configmap",
            world.state_name,
            "--from-file=tfstate=state.tfstate",
            "--dry-run=client",
            "--output=yaml",
        ],
        env,
        world.terraform,
        b.out_dir("seed-huge-create"),
    )
    if create.rc != 0:
        return (
            "create --dry-run failed",
            f"kubectl create --dry-run failed: {create.stderr.strip()[:300]}",
        )
    (world.terraform / "configmap.yaml").write_text(create.stdout)
    argv = ["kubectl", "replace", "--filename", "configmap.yaml", "--force"]
    if b.replace_flags:
        argv.append(b.replace_flags)
    replace = run_timed(argv, env, world.terraform, b.out_dir("seed-huge-replace"))
    after = b.configmap(world.state_name)
    error = re.sub(r"\s+", " ", replace.stderr.strip())
    status = re.search(r"Error from server \((\w+)\)", error)
    gone = after is None
    lost = (
        "the ConfigMap is now GONE: --force deleted it, then the create was refused"
        if gone
        else "the old ConfigMap is still there"
    )
    if replace.rc == 0:
        return "", f"kubectl replace --force exited 0 ({lost})"
    short = f"{status.group(1) if status else 'exit ' + str(replace.rc)}" + (
        "; old state deleted" if gone else ""
    )
    return short, f"`kubectl replace --force` exited {replace.rc}: {error[:300]} -- {lost}"
