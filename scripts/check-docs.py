#!/usr/bin/env python3
"""Checks every link between the project's Markdown files: the file it names exists, and so does
the heading its `#anchor` names (GitHub's anchors: lower case, punctuation dropped, spaces as
`-`). Links to other sites are not followed. And the README stays a page a newcomer reads
through: at most 150 lines, the rest under docs/. Exit status 1, naming each problem.

    scripts/check-docs.py      # every tracked *.md file, then itself on a broken link
"""

import os
import re
import subprocess
import sys
import tempfile

README_LINES = 150
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path):
    """The anchors of `path`'s headings, as GitHub makes them (outside code blocks)."""
    found, fence, seen = set(), False, {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        if fence or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip()
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(root, files):
    """Each broken link of `files` (relative to `root`), said in one line."""
    broken = []
    for name in files:
        path = os.path.join(root, name)
        fence = False
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            if line.startswith("```"):
                fence = not fence
            if fence:
                continue
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file, _, anchor = target.partition("#")
                linked = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
                where = f"{name}:{number}: {target}"
                if not os.path.exists(linked):
                    broken.append(f"{where}: no {os.path.relpath(linked, root)}")
                elif anchor and linked.endswith(".md") and anchor not in anchors(linked):
                    broken.append(f"{where}: no heading #{anchor} in {os.path.relpath(linked, root)}")
    return broken


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    broken = broken_links(root, files)
    readme = sum(1 for _ in open(os.path.join(root, "README.md"), encoding="utf-8"))
    if readme > README_LINES:
        broken.append(f"README.md: {readme} lines, over {README_LINES}: move the detail to docs/")
    for line in broken:
        print(line, file=sys.stderr)
    # The control: a missing file and a missing heading must both be found.
    with tempfile.TemporaryDirectory() as scratch:
        with open(os.path.join(scratch, "a.md"), "w") as out:
            out.write("# A\n\n[b](b.md#there) [c](c.md) [self](#a) [code](`x`)\n")
        with open(os.path.join(scratch, "b.md"), "w") as out:
            out.write("# Not there\n")
        control = broken_links(scratch, ["a.md", "b.md"])
    if len(control) != 3:
        print(f"self-check: a broken file, a broken anchor and a bad target, found {control}",
              file=sys.stderr)
        return 1
    if not broken:
        print(f"docs: every link between the {len(files)} Markdown files resolves")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
