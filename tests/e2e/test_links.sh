#!/usr/bin/env bash
# Symbolic links in an archive may not lead out of their job folder, alone or in combination:
# "up" stays inside on its own, "esc" stays inside as text, yet the kernel walking esc through up
# would reach the machine's /etc/passwd. The archive is made here (the fixture is written by this
# test, so no shared fixture changes). Also: job and branch names the kernel cannot show as they
# are ("", ".", "..") are left out of listings instead of failing the whole folder.
source "$(dirname "$0")/lib.sh"

FIXTURE=$T/links.json
"$PYTHON" - "$FIXTURE" <<'PY'
import json, sys
deep = "/".join("d%d" % i for i in range(1, 21))  # 20 folders
ups = lambda n: "/".join([".."] * n)
links = {
    deep + "/up": ups(20),                               # the job folder: inside
    "esc": deep + "/up/" + ups(20) + "/etc/passwd",      # inside as text, not through up
    "esc-root": deep + "/up/" + ups(20),                 # a folder link to /
    "in": "esc",                                         # inside, to a link that leads out
    "good": deep + "/up/ok.txt",                         # through up, and inside
    "good-dir": deep + "/up/" + deep,                    # a folder link that stays inside
    "loop": "loop",
    "dangling": "missing/file",
    "via-file": "ok.txt/../ok.txt",                      # ok.txt is a file: ENOTDIR
    "via-missing": "missing/../ok.txt",                  # ENOENT, as the kernel walks it
}
members = [{"path": "ok.txt", "text": "fine\n"}, {"path": deep + "/deep.txt", "text": "deep\n"}]
members += [{"path": p, "symlink": t} for p, t in links.items()]
sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
jobs = [{"id": 2101, "name": "links", "archive": "links"}]
jobs += [{"id": 2102 + i, "name": n, "archive": "plain"} for i, n in enumerate([".", "..", ""])]
json.dump({
    "users": {"maria": {"id": 1}},
    "tokens": [{"value": "glpat-sim-links-5e2a", "kind": "personal", "user": "maria",
                "scopes": ["api"], "role": "maintainer"}],
    "archives": {"links": {"members": members},
                 "plain": {"members": [{"path": "x.txt", "text": "x\n"}]}},
    "projects": [{"id": 201, "path": "acme/links", "visibility": "public",
                  "default_branch": "main", "members": {"maria": "maintainer"},
                  "branches": {"main": sha, "": sha, "ok": sha}, "tags": {},
                  "pipelines": [{"id": 610, "ref": "main", "status": "success", "jobs": jobs},
                                {"id": 611, "ref": "", "status": "success",
                                 "jobs": [{"id": 2201, "name": "links", "archive": "plain"}]}]}],
}, open(sys.argv[1], "w"), indent=1)
PY
start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
mount_fs "$mnt"
job="$mnt/acme%2Flinks/main/links"
deep=$(seq -f 'd%g' 1 20 | paste -sd/)

check_eq "a link inside on its own is followed" "OK 5" "$(sys read "$job/$deep/up/ok.txt")"
check_eq "a link leading through it, inside, is followed" "OK 5" "$(sys read "$job/good")"
check "a folder link that stays inside lists" bash -c "ls '$job/good-dir' | grep -qx deep.txt"
check_eq "a link that leads out through another is refused (EACCES)" EACCES \
	"$(sys read "$job/esc")"
check "cat of it never prints the machine's /etc/passwd" \
	bash -c "! cat '$job/esc' >'$T/esc.out' 2>/dev/null && ! grep -q root: '$T/esc.out'"
check_eq "readlink of it is refused too" EACCES "$(sys readlink "$job/esc")"
check_eq "it is still listed as a link" "OK 120777" "$(sys stat "$job/esc" | cut -d' ' -f1,2)"
check_eq "a folder link leading out through another does not list (EACCES)" EACCES \
	"$(sys listdir "$job/esc-root")"
check "ls of it fails and shows nothing of /" \
	bash -c "! ls '$job/esc-root/' >'$T/ls.out' 2>/dev/null && ! grep -qx etc '$T/ls.out'"
check_eq "a link to a link that leads out is refused" EACCES "$(sys read "$job/in")"
check_eq "a link that loops is ELOOP" ELOOP "$(sys read "$job/loop")"
check_eq "readlink gives the canonical text: climbing only in front, no links" "OK ok.txt" \
	"$(sys readlink "$job/good")"
check_eq "a dangling link reads its text" "OK missing/file" "$(sys readlink "$job/dangling")"
check_eq "and following it is ENOENT" ENOENT "$(sys read "$job/dangling")"
check_eq "a link through a file and '..' is ENOTDIR, not the file" ENOTDIR \
	"$(sys read "$job/via-file")"
check_eq "a link through a missing name and '..' is ENOENT" ENOENT "$(sys read "$job/via-missing")"
check "each refusal is logged" grep -q "leads outside its job folder" "$T/daemon.log"

# Names the kernel cannot list as they are: left out, the rest of the folder still lists.
refjobs=$(sys listdir "$mnt/acme%2Flinks/main")
check "a ref with jobs named '.', '..' and '' still lists" \
	bash -c "grep -qx OK <<<'$refjobs' && grep -qx links <<<'$refjobs'"
check_eq "and shows each of . and .. once, none of those jobs" \
	". .. links links.log links.zip" \
	"$(ls -a "$mnt/acme%2Flinks/main" | sort | paste -sd' ')"
check_eq "their .zip files are not reachable" "ENOENT ENOENT" \
	"$(sys stat "$mnt/acme%2Flinks/main/..zip") $(sys stat "$mnt/acme%2Flinks/main/...zip")"
check "a project with a branch named '' still lists the others" \
	bash -c "ls '$mnt/acme%2Flinks' >'$T/refs.out' && grep -qx main '$T/refs.out' && grep -qx ok '$T/refs.out'"
check "names left out are logged" grep -q "left out of a listing" "$T/daemon.log"
finish
