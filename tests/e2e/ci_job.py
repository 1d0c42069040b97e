"""Prints the README's CI job (the first ```yaml block under "## CI runners") as a bash script:
its variables exported, then its script lines as they are, one per line, the way a GitLab
runner's bash shell runs them. The test runs what the README shows, so the two cannot drift.

usage: ci_job.py README [NAME=VALUE...]   (NAME=VALUE overrides a job variable)
"""
import re
import shlex
import sys

import yaml


def job_from_readme(path):
    text = open(path, encoding="utf-8").read()
    section = text.split("\n## CI runners\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    jobs = yaml.safe_load(block)
    (name, job), = jobs.items()
    return name, job


def main():
    name, job = job_from_readme(sys.argv[1])
    variables = dict(job.get("variables", {}))
    for kv in sys.argv[2:]:
        k, v = kv.split("=", 1)
        variables[k] = v
    print(f"# job {name} from {sys.argv[1]}")
    print("set -eo pipefail")  # as the runner's bash shell does
    for k, v in variables.items():
        print(f"export {k}={shlex.quote(str(v))}")
    for line in job["script"]:
        print(line)


if __name__ == "__main__":
    main()
