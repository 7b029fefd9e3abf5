/**
 * Child process of the partial-recovery grader (started by #harness/crash.ts): loads the
 * submission and runs one or more threads of the grader's workflows with runWorkflow, each on
 * its own SQLite file and ledger, until they end or the process reaches its crash point.
 *
 * A crash run has one thread. A resume process may take several threads that crashed in other
 * processes: it never ran any of them, so each still resumes from nothing but its files, and a
 * crash matrix needs half as many process starts.
 */
import { SqliteSaver } from "#runtime";
import { childMain } from "#harness/crash.ts";
import { loadImplementation } from "#harness/implementation.ts";
import { Ledger, Probe, probedSaver, WORKFLOWS, type RecoveryApi, type RunResult, type WorkflowName } from "./fixture.ts";

export interface ThreadRun {
  workflow: WorkflowName;
  dbFile: string;
  ledgerFile: string;
  threadId: string;
  input: Record<string, unknown>;
}

export type ThreadOutcome = { ok: true; result: RunResult } | { ok: false; message: string };

childMain(async (runs: ThreadRun[]): Promise<ThreadOutcome[]> => {
  const api = await loadImplementation<RecoveryApi>("lesson-11", "partial-recovery", ["runWorkflow"]);
  const outcomes: ThreadOutcome[] = [];
  for (const run of runs) {
    const probe = new Probe();
    const saver = new SqliteSaver(run.dbFile);
    try {
      const workflow = WORKFLOWS[run.workflow]({ ledger: new Ledger(run.ledgerFile), probe });
      outcomes.push({ ok: true, result: await api.runWorkflow(workflow, { saver: probedSaver(saver, probe), threadId: run.threadId, input: run.input }) });
    } catch (error) {
      outcomes.push({ ok: false, message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    } finally {
      saver.close();
    }
  }
  return outcomes;
});
