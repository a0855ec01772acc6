"""The bench's scenarios, one module each, run by bench/run.py in this order:

- small_state: 1-3, one state-backed step, `runner run` against the seed script: wall time,
  API requests, the runner's peak RSS;
- validate: 4, `runner validate` against check-jsonschema (measured by bench/validate.py);
- big_state: 5, a 0.9 MiB state saved and restored, in process and end to end;
- huge_states: 5, 10 and 30 MiB states, and the seed's approach failing at that size;
- manifests: 6, 100 manifests for one request, `runner run` against the marketplace's bash + yq:
  wall time, peak RSS, and the same documents on both sides;
- many_steps: 7, `runner run STEP` in stamped steps folders of 1, 100 and 1,000 files: wall
  time and peak RSS against the 1-file folder's (the stamp's index at work);
- stores: 9, local, configmap and s3 side by side: save and restore of 1, 10 and 30 MiB states,
  plain and encrypted, each in a fresh process (bench/store_io.py); and a stamped `runner run`
  with the s3 store against the local store;
- diagnostics: where the runner's time and memory go, when a goal fails (or with --explain).

Each takes the Bench (bench/harness.py) and adds its rows, notes and goals to it.
"""
