import { gradeUnit } from "/work/main/kit/grading/engine.ts";
const t = Date.now();
const r = await gradeUnit({ lesson: "lesson-11", unit: "zz-probe", implementationDir: process.argv[2]!, hidden: false, seed: 1, limits: { graceMs: 2000 } });
console.log(JSON.stringify(r, null, 1), Date.now() - t);
