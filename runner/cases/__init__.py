"""`runner test`: run steps against case folders and compare what they made with what is expected.

A case folder holds one request and what the steps should make of it:

    CASE/
      input/object.yaml   the request (required)
      env                 KEY=VALUE lines: the container's environment (optional; secrets allowed)
      case.yaml           options (optional): steps, stepsDir, action, workflow, promise,
                          pipeline, expect, secrets, ignore, timeout, description,
                          stepOutputs, sensitiveOutputs
      steps               step names, one a line (optional; the same as `steps:` in case.yaml)
      state/STEP/KEY      the state a step starts from (optional; default: none, a first run)
      output/             the expected /kratix/output   (absent: the steps write nothing there)
      metadata/           the expected /kratix/metadata (status.yaml, destination-selectors.yaml;
                          runner/outputs/STEP.json only if it holds runner/, see below)

Each case runs `runner run` in process, through the same `cli.main` and Session as the `runner`
program (the verb hands `cli.main` down), with its own environment, fresh output and metadata
folders and a fresh local state store (holding only what state/ seeds) in a temporary folder, so
cases can't see each other or the user's state. `-j N` runs N cases at once, each in a process
forked for it. case.yaml's `stepOutputs:` stands for the containers that ran
before this one: their outputs are written to the fresh metadata folder's runner/outputs first.
The run's metadata/runner/ (the step outputs `runner run` records for later containers) is
compared only when the case's expected metadata/ holds a runner/ folder, so a case that doesn't
care about the records needn't spell them out.
YAML and JSON files are compared as data (key order and formatting don't matter) and differences
are shown as unified diffs of the normalised text. Secrets from the env file are masked in
everything shown and in everything `--update` writes.

The modules, in the order a run uses them:

    case_files.py   parsing and checking a case's files: case.yaml, env, steps
    case.py         the Case: finding case folders, loading one, its steps folder and secrets
    seed.py         the case's state/ folder: checked, then stored as the steps' starting state
    step_outputs.py case.yaml's `stepOutputs:`: checked, then recorded as earlier containers' outputs
    ignore.py       case.yaml's `ignore:`: the volatile fields left out of the comparison
    inprocess.py    running `runner run` in process: the case's environment, the process-wide
                    state put back, the timeout; an interrupt stops the case, then runner test
    runcase.py      running one case in fresh folders and judging the result
    compare.py      produced vs expected trees: data-aware diffs, and --update
    report.py       what is printed: each result, the summary line; the JUnit report
    forked.py       `-j N`: each case in a process forked for it, N at once
    suite.py        all the cases of one `runner test`: one by one or N at once, reported in order
"""
