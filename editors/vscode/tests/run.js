// The grammar's tests (npm test in editors/): the hand-written scope assertions in
// editors/vscode/tests/*.test.policy, through vscode-tmgrammar-test; then every bundled
// policy (policies/**/*.policy) tokenized with the same engine VS Code uses, failing on
// any non-blank text left with no scope but the file's own (`source.loyalty`) and on any
// `invalid.*` scope: a construct the grammar does not know.
"use strict";

const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const editors = path.resolve(__dirname, "..", "..");
const grammarPath = path.join(editors, "vscode", "syntaxes", "loyalty.tmLanguage.json");
const policies = path.resolve(editors, "..", "policies");

function assertions() {
  const cli = path.join(editors, "node_modules", ".bin", "vscode-tmgrammar-test");
  const run = spawnSync(cli, ["-g", grammarPath, "--config", path.join(editors, "vscode", "package.json"),
    path.join(editors, "vscode", "tests", "*.test.policy")], { stdio: "inherit" });
  return run.status === 0;
}

function policyFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name.startsWith(".") ? [] : policyFiles(full);
    return entry.name.endsWith(".policy") ? [full] : [];
  }).sort();
}

async function grammar() {
  const wasm = fs.readFileSync(path.join(editors, "node_modules", "vscode-oniguruma", "release", "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  return registry.loadGrammar("source.loyalty");
}

async function everyPolicy() {
  const g = await grammar();
  const files = policyFiles(policies);
  let problems = 0;
  let lines = 0;
  for (const file of files) {
    let stack = vsctm.INITIAL;
    fs.readFileSync(file, "utf8").split("\n").forEach((line, index) => {
      const result = g.tokenizeLine(line, stack);
      stack = result.ruleStack;
      lines += 1;
      for (const token of result.tokens) {
        const text = line.slice(token.startIndex, token.endIndex);
        const bare = token.scopes.length === 1 && text.trim() !== "";
        const invalid = token.scopes.find((s) => s.startsWith("invalid."));
        if (bare || invalid) {
          problems += 1;
          const why = bare ? "no scope" : invalid;
          console.error(`${path.relative(process.cwd(), file)}:${index + 1}:${token.startIndex + 1}: ${why}: ${JSON.stringify(text)}`);
        }
      }
    });
  }
  const verdict = problems ? `✖ ${problems} unscoped or invalid tokens` : "✓ every token scoped";
  console.log(`${verdict} in ${files.length} bundled policies (${lines} lines)`);
  return problems === 0 && files.length > 0;
}

(async () => {
  const ok = assertions();
  const all = await everyPolicy();
  process.exit(ok && all ? 0 : 1);
})();
