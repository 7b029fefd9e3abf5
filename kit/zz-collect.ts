import { collectChecks } from "./grading/collect.ts";
console.log(await collectChecks("lesson-11", "zz-probe"));
