/**
 * lesson-03 / trace: the seed's tool-call trace, saved per task on SQLite, that stays true
 * across a crash and a resume. Read lessons/lesson-03/trace.md first.
 *
 * Given code (you need not change it): checkpoint-store.ts (an append-only SQLite checkpoint
 * store) and graph.ts (the seed's StateGraph: nodes, edges, tools, a checkpoint after every
 * node with the node to run next and the steps done, invoke() resuming from it). Yours:
 * trace-store.ts (SqliteTraceStore) and the TODOs in StateGraph.invoke that record into it.
 *
 *   graph.withCheckpoint(new SqliteCheckpointStore(cpFile)).withTrace(new SqliteTraceStore(traceFile, { maxDataBytes }))
 *   await graph.invoke(initial, start, taskId)      // records the run; after a crash, call it again: it resumes
 *   await traceStore.entries(taskId)                 // every entry of the task, in append order
 *   await traceStore.entries(taskId, { nodeId })     // only that node's (also { type }, or both)
 *
 * An entry is { seq, taskId, nodeId, type, step, attempt, data, dropped, timestamp }:
 * - One step = one node execution: step 1 is the first node run, step k+1 the node after step k
 *   (a checkpoint's `step` is the number of steps done). For each step, in this order:
 *     node_start   data = the state the node is given
 *     tool_call    data = { tool, input }      (one per ctx.callTool, before the tool runs)
 *     tool_result  data = { tool, output }     (after it returns, before the node gets the output)
 *     node_end     data = the update the node returned
 *   then the graph saves the step's checkpoint. The grader hands withCheckpoint() a store of its
 *   own that wraps the given one (to see each save): use only the CheckpointStore interface.
 * - Durable and write-ahead: each entry is committed to the file before the work it announces
 *   goes on (the node body, the tool, the node's use of the result, the checkpoint). A process
 *   killed at any moment leaves every entry recorded up to that moment, and nothing else.
 * - Across a crash and a resume: nothing is deleted or recorded twice. A step whose checkpoint was
 *   saved is never run again, so its entries appear once. The step the crash cut short runs again
 *   on resume: its earlier entries stay, and its new ones carry attempt 2 (3 after a second crash,
 *   and so on); every other entry has attempt 1. A node that runs twice in a loop is two steps,
 *   each attempt 1. Invoking a finished task (its checkpoint is at END) records nothing.
 * - Order: entries(taskId) returns a task's entries in the order they were appended, also across
 *   processes; seq grows with every append. Timestamps are Dates, but clocks tie and step back:
 *   never order by them.
 * - Queries: task ids and node ids are exact keys ("t1" never sees "t10", "T1", "t_" or "xt1");
 *   a task with no entries gives []. Any other process opening the file sees the same entries.
 * - Data is JSON (the grader's states, inputs and outputs are plain JSON): it comes back deep-equal.
 * - Bounded: a task keeps at most maxDataBytes (default 1,000,000) of payload, the size of a
 *   payload being the UTF-8 byte length of JSON.stringify(data). Entries are never dropped, only
 *   payloads: a dropped payload reads data null, dropped true (a kept one has dropped false). When
 *   an append would take the task over the cap, drop the oldest kept tool_result payloads first,
 *   then the oldest kept payloads of any type, until the new one fits; a payload larger than the
 *   cap on its own is dropped on arrival. The cap counts what is in the file (a resumed process
 *   counts what the crashed one kept).
 * - Bad input: new SqliteTraceStore(file, { maxDataBytes }) with a maxDataBytes that is not a
 *   positive integer, entries("") or a filter whose nodeId is not a non-empty string or whose
 *   type is not one of the four throws TraceStoreError.
 *
 * What the grader checks, in order (each failure names the lesson section to read). It runs
 * graphs whose nodes and tools it observes, in one learner process, kills that process with
 * SIGKILL at points it observes itself, resumes in a fresh process and reads your trace in another:
 * - core: an uncrashed run records every entry with its data, step and attempt, in order;
 * - core: a crash at any point (at node start, inside each tool, at node return, after each
 *   checkpoint) leaves exactly the entries recorded up to it;
 * - core: after a crash and a resume, checkpointed steps appear once and the step cut short is
 *   recorded again with attempt 2;
 * - core: entries(taskId) and entries(taskId, { nodeId }) are exact, and in order;
 * - core: with maxDataBytes set, a task keeps at most that many payload bytes and every entry;
 * - excellence: two crashes in one step (attempt 3), loops, finished tasks; the exact drop order;
 *   the cap across a resume; a clock that steps back; bad input refused with TraceStoreError.
 */
export { SqliteCheckpointStore, type Checkpoint, type CheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph, type NodeContext, type NodeFn, type Router, type State, type ToolFn } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError, type TraceEntry, type TraceFilter, type TraceStoreOptions, type TraceType } from "./trace-store.ts";
