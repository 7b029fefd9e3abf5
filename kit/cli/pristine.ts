/**
 * The pristine starters: the committed exercises/ of a kit checkout (git HEAD),
 * or, in a candidate bundle (no git), the copy packed under kit/starters/.
 * `npm run pack` ships them and `reset` restores them, so neither depends on
 * what someone has typed into exercises/ since.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";

export class PristineError extends Error {
  override name = "PristineError";
}

function git(args: string[], root: string): Buffer {
  return execFileSync("git", args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 2 ** 20 });
}

export function isGitCheckout(root = KIT_ROOT): boolean {
  try {
    return git(["rev-parse", "--show-toplevel"], root).toString().trim() !== "" && existsSync(join(root, ".git"));
  } catch {
    return false;
  }
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path).map((f) => `${name}/${f}`) : [name];
  });
}

/**
 * The committed files under `dir` (a path relative to the kit root, e.g.
 * exercises/lesson-11/serde), as path relative to `dir` -> contents.
 */
export function pristineFiles(dir: string, root = KIT_ROOT): Map<string, Buffer> {
  // A bundle's packed starters win: a candidate may well commit their own work to git.
  const bundled = join(root, "kit", "starters", relative("exercises", dir));
  if (dir.startsWith("exercises/") && existsSync(bundled)) {
    return new Map(listFiles(bundled).map((file) => [file, readFileSync(join(bundled, file))]));
  }
  if (isGitCheckout(root)) {
    const listed = git(["ls-tree", "-r", "-z", "--name-only", "HEAD", "--", dir], root).toString().split("\0").filter(Boolean);
    return new Map(listed.map((path) => [relative(dir, path), git(["show", `HEAD:${path}`], root)]));
  }
  throw new PristineError(`Cannot find the pristine copy of ${dir}: this folder is neither a git checkout of the kit nor a candidate bundle.`);
}

/** Files under `dir` whose working-tree contents differ from the pristine copy (changed, added or deleted). */
export function changedFiles(dir: string, root = KIT_ROOT): string[] {
  const pristine = pristineFiles(dir, root);
  const present = listFiles(join(root, dir)).filter((f) => !f.split("/").includes("node_modules"));
  const changed = present.filter((file) => !pristine.get(file)?.equals(readFileSync(join(root, dir, file))));
  const deleted = [...pristine.keys()].filter((file) => !present.includes(file));
  return [...changed, ...deleted].sort().map((file) => join(dir, file));
}
