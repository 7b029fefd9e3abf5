/**
 * Learner-side fixture of the resumable-graph grader: trusted code that runs in the learner
 * process, next to the code under test. It builds the grader's graphs (graphs.ts) on the
 * learner's StateGraph with synchronous routers, whose node bodies are the trusted side's
 * callbacks, and opens the store the graph saves to: an append-only SQLite store with the given
 * store's behaviour, which tells the trusted side, after the fact, that a checkpoint was
 * committed (the "after its checkpoint" crash point). Nothing here names a check or a crash point.
 */
import { randomUUID } from "node:crypto";
import { deserialize, serialize } from "node:v8";
import Database from "better-sqlite3";
import { EMAIL_NODE, END, GRAPHS, type GraphName, type State } from "./graphs.ts";

export { stopClock } from "../../harness/stopped-clock.ts";

export interface Hooks {
  /** A node of the grader's runs: resolves with its update. */
  run(node: string, state: State, context: unknown): Promise<State>;
  /** The email node is entered / has returned (its body is the learner's sendEmailNode). */
  enter(node: string, state: State, context: unknown): Promise<void>;
  left(node: string, update: unknown): Promise<void>;
  /** A checkpoint was committed. */
  saved(taskId: string, currentNode: string, checkpointId: string): Promise<void>;
}

type Checkpoint = { taskId: string; state: unknown; currentNode: string; timestamp: Date };
type Row = { checkpoint_id: string; task_id: string; parent_id: string | null; current_node: string; timestamp_ms: number; state: Uint8Array };

export const SCHEMA = `CREATE TABLE IF NOT EXISTS checkpoints (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, checkpoint_id TEXT NOT NULL UNIQUE, task_id TEXT NOT NULL,
  parent_id TEXT, current_node TEXT NOT NULL, timestamp_ms INTEGER NOT NULL, state BLOB NOT NULL);
  CREATE INDEX IF NOT EXISTS checkpoints_by_task ON checkpoints (task_id, seq);`;

class ReportingStore {
  private readonly db: Database.Database;

  constructor(
    file: string,
    private readonly hooks: Pick<Hooks, "saved">,
  ) {
    this.db = new Database(file, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(SCHEMA);
  }

  async save(taskId: string, checkpoint: Checkpoint, options: { parentId?: string } = {}): Promise<string> {
    if (typeof taskId !== "string" || taskId === "" || checkpoint?.taskId !== taskId) throw new Error(`save(): taskId must be a non-empty string equal to checkpoint.taskId (got ${String(taskId)} and ${String(checkpoint?.taskId)})`);
    if (typeof checkpoint.currentNode !== "string" || checkpoint.currentNode === "") throw new Error("save(): checkpoint.currentNode must name the node to run next");
    if (!(checkpoint.timestamp instanceof Date) || Number.isNaN(checkpoint.timestamp.getTime())) throw new Error("save(): checkpoint.timestamp must be a valid Date");
    const state = serialize(checkpoint.state);
    const id = this.db
      .transaction(() => {
        let parent: string | null;
        if (options?.parentId !== undefined) {
          if (!this.row(taskId, options.parentId)) throw new Error(`save(): task ${taskId} has no checkpoint ${options.parentId}`);
          parent = options.parentId;
        } else {
          const latest = this.latest(taskId);
          if (latest?.current_node === END) throw new Error(`save(): task ${taskId} is finished; pass { parentId } to resume from an earlier checkpoint`);
          parent = latest?.checkpoint_id ?? null;
        }
        const checkpointId = randomUUID();
        this.db
          .prepare("INSERT INTO checkpoints (checkpoint_id, task_id, parent_id, current_node, timestamp_ms, state) VALUES (?, ?, ?, ?, ?, ?)")
          .run(checkpointId, taskId, parent, checkpoint.currentNode, checkpoint.timestamp.getTime(), state);
        return checkpointId;
      })
      .immediate();
    await this.hooks.saved(taskId, checkpoint.currentNode, id);
    return id;
  }

  async load(taskId: string, checkpointId?: string) {
    const row = checkpointId === undefined ? this.latest(taskId) : this.row(taskId, checkpointId);
    return row ? toCheckpoint(row) : null;
  }

  async list(taskId: string, options: { limit?: number } = {}) {
    const rows = this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT ?").all(taskId, options?.limit ?? -1) as Row[];
    return rows.map(toCheckpoint);
  }

  async delete(taskId: string): Promise<void> {
    this.db.prepare("DELETE FROM checkpoints WHERE task_id = ?").run(taskId);
  }

  private latest(taskId: string): Row | undefined {
    return this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT 1").get(taskId) as Row | undefined;
  }

  private row(taskId: string, checkpointId: string): Row | undefined {
    return this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? AND checkpoint_id = ?").get(taskId, checkpointId) as Row | undefined;
  }
}

function toCheckpoint(row: Row) {
  return { checkpointId: row.checkpoint_id, parentId: row.parent_id, taskId: row.task_id, state: deserialize(row.state), currentNode: row.current_node, timestamp: new Date(row.timestamp_ms) };
}

interface LearnerModule {
  StateGraph: new (...args: unknown[]) => { addNode(name: string, fn: unknown): unknown; addEdge(from: string, to: unknown): unknown; withCheckpoint(store: unknown): unknown; invoke(input: unknown, start: string, taskId?: string): Promise<unknown> };
  sendEmailNode(mailer: unknown): (state: State, context: unknown) => unknown;
}

export interface BuildOptions {
  /** Save to this SQLite file (no store at all when absent). */
  file?: string;
  /** ab only: how many picks before the run ends. */
  rounds?: number;
  /** Replace the edge out of this node by one to a node that does not exist. */
  brokenEdgeFrom?: string;
}

/**
 * The graph `name` on the learner's StateGraph (`unit` is the learner's module, passed back from
 * the trusted side), with its store when a file is given.
 */
export function build(unit: LearnerModule, name: GraphName, hooks: Hooks, mailer: unknown, options: BuildOptions = {}) {
  const spec = GRAPHS[name];
  const graph = new unit.StateGraph();
  const email = unit.sendEmailNode(mailer);
  for (const node of spec.nodes) {
    if (node === EMAIL_NODE) {
      graph.addNode(node, async (state: State, context: unknown) => {
        await hooks.enter(node, { ...state }, context);
        const update = await email(state, context);
        await hooks.left(node, update);
        return update;
      });
    } else {
      graph.addNode(node, (state: State, context: unknown) => hooks.run(node, { ...state }, context));
    }
  }
  for (const [from, to] of Object.entries(spec.edges)) graph.addEdge(from, from === options.brokenEdgeFrom ? "reindex" : to);
  if (name === "ab") {
    // Not a pure function of the state (an A/B split): every call answers differently.
    let calls = 0;
    const rounds = options.rounds ?? 3;
    graph.addEdge("pick", (state: State) => (Number(state.picks) > rounds ? END : ++calls % 2 === 1 ? "left" : "right"));
  }
  if (options.file !== undefined) graph.withCheckpoint(new ReportingStore(options.file, hooks));
  return graph;
}
