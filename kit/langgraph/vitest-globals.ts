/**
 * LangGraph's conformance suite (@langchain/langgraph-checkpoint-validation)
 * calls describe/it/expect as globals, i.e. it expects Vitest's `globals: true`.
 * A test file imports this module first to get them without turning globals on
 * for every other test of the kit (each file runs in its own fork).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, test } from "vitest";

Object.assign(globalThis, { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, test });
