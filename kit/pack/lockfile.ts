/**
 * The candidate bundle's package-lock.json, derived offline from the kit's:
 * the same resolved versions and integrity hashes, restricted to what the
 * bundle's own dependencies reach. Each kept package stays at its place in the
 * tree, so every dependency still resolves to the entry it resolved to in the
 * kit (npm's lookup walks up node_modules folders, and nothing reachable is dropped).
 */
import { z } from "zod";

const LockPackageSchema = z.looseObject({
  version: z.string().optional(),
  dependencies: z.record(z.string(), z.string()).optional(),
  optionalDependencies: z.record(z.string(), z.string()).optional(),
  peerDependencies: z.record(z.string(), z.string()).optional(),
  peerDependenciesMeta: z.record(z.string(), z.looseObject({ optional: z.boolean().optional() })).optional(),
  link: z.boolean().optional(),
  resolved: z.string().optional(),
});
const LockfileSchema = z.looseObject({
  name: z.string(),
  version: z.string(),
  lockfileVersion: z.literal(3),
  packages: z.record(z.string(), LockPackageSchema),
});
type Lockfile = z.infer<typeof LockfileSchema>;

export class LockfileError extends Error {
  override name = "LockfileError";
}

/** Where npm finds dependency `name` for the package installed at `from` ("" is the root). */
function resolveFrom(packages: Lockfile["packages"], from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ""}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!base) return undefined;
    const cut = base.lastIndexOf("/node_modules/");
    base = cut < 0 ? "" : base.slice(0, cut);
  }
}

/**
 * @param kitLock the kit's package-lock.json text
 * @param root the candidate package.json's name, version, engines and dependencies (a subset of the kit's)
 */
export function subsetLockfile(kitLock: string, root: { name: string; version: string; dependencies: Record<string, string>; engines?: Record<string, string> }): string {
  const lock = LockfileSchema.parse(JSON.parse(kitLock));
  const { packages } = lock;
  const kept = new Set<string>();
  const queue: Array<[from: string, name: string, optional: boolean]> = Object.keys(root.dependencies).map((name) => ["", name, false]);
  while (queue.length > 0) {
    const [from, name, optional] = queue.shift()!;
    let path = resolveFrom(packages, from, name);
    if (!path) {
      if (optional) continue; // an optional dependency for another platform, absent from the kit's lock too
      throw new LockfileError(`${name} (needed by ${from || "the candidate package.json"}) is not in the kit's package-lock.json`);
    }
    const entry = packages[path]!;
    if (entry.link && entry.resolved) path = entry.resolved;
    if (kept.has(path)) continue;
    kept.add(path);
    const target = packages[path]!;
    for (const dep of Object.keys(target.dependencies ?? {})) queue.push([path, dep, false]);
    for (const dep of Object.keys(target.optionalDependencies ?? {})) queue.push([path, dep, true]);
    for (const dep of Object.keys(target.peerDependencies ?? {})) {
      // npm installs required peers; optional ones only when something else asks for them.
      if (!target.peerDependenciesMeta?.[dep]?.optional) queue.push([path, dep, false]);
    }
  }
  const rootEntry = { name: root.name, version: root.version, dependencies: root.dependencies, ...(root.engines ? { engines: root.engines } : {}) };
  const subset = Object.fromEntries(
    Object.keys(packages)
      .filter((path) => kept.has(path))
      .map((path) => [path, packages[path]]),
  );
  return `${JSON.stringify({ name: root.name, version: root.version, lockfileVersion: 3, requires: true, packages: { "": rootEntry, ...subset } }, null, 2)}\n`;
}
