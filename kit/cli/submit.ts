/**
 * npm run submit [-- --out FILE]: the candidate's return bundle. A .tgz of this
 * folder without node_modules/, the kit's state and earlier bundles, written
 * next to the folder (never inside what it archives), named after the folder.
 * The interviewer grades it as is: `npm run grade <lesson> -- --submission FILE`.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import * as tar from "tar";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { forgottenSeparator, HelpRequested, swallowedOptions, userPath, UsageError, parseCommandArgs, exitWithError } from "./options.ts";

const USAGE = "Usage: npm run submit [-- --out FILE.tgz]\n  writes ../<this folder>-submission.tgz: send that file to your interviewer";

/** Paths (relative to the folder) that never go into a return bundle. */
const LEFT_OUT = /^(node_modules|\.grading|\.kit-state|\.checkpoint-kit|dist|\.git)(\/|$)|(^|\/)node_modules(\/|$)|-submission\.(tgz|zip)$/;

export async function writeSubmission(root: string, outFile?: string): Promise<{ file: string; files: number }> {
  const folder = basename(root);
  const file = resolve(outFile ?? join(dirname(root), `${folder}-submission.tgz`));
  if (!existsSync(join(root, "exercises"))) throw new UsageError(`${root} has no exercises/ folder: run npm run submit inside the kit folder you worked in.`);
  if (file === root || file.startsWith(`${root}${sep}`)) {
    throw new UsageError(`--out must be outside the folder it archives (${root}); e.g. --out ../${folder}-submission.tgz`);
  }
  mkdirSync(dirname(file), { recursive: true });
  let files = 0;
  await tar.c(
    {
      gzip: true,
      file,
      cwd: dirname(root),
      portable: true,
      filter: (path, stat) => {
        const inside = relative(folder, path).split(sep).join("/");
        if (inside && LEFT_OUT.test(inside)) return false;
        if (!("isDirectory" in stat) || !stat.isDirectory()) files++;
        return true;
      },
    },
    [folder],
  );
  return { file, files };
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs({ args: argv, options: { out: { type: "string" }, help: { type: "boolean", short: "h", default: false } } }, USAGE);
  if (values.help) throw new HelpRequested(USAGE);
  const swallowed = swallowedOptions(["out"]);
  if (swallowed.length) throw forgottenSeparator(swallowed, []);
  const { file, files } = await writeSubmission(KIT_ROOT, values.out ? userPath(values.out) : undefined);
  const size = statSync(file).size;
  process.stdout.write(`wrote ${file} (${files} files, ${Math.ceil(size / 1024)} KB): send this file to your interviewer.\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => exitWithError(error));
