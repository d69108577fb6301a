// The VS Code client: starts `loyalty lsp` over stdio for *.policy files (and the
// programme's schema.toml), and runs the server's "run tests" command from its code lens.
// Its one dependency, vscode-languageclient, comes from npm: `npm ci` in this folder
// before packaging (`npx @vscode/vsce package`) or before opening the folder in VS Code's
// extension host; see docs/editors.md.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace
    .getConfiguration("loyalty")
    .get("server.command", ["loyalty", "lsp"]);
  client = new LanguageClient(
    "loyalty",
    "Loyalty policies",
    { command, args, transport: TransportKind.stdio },
    {
      documentSelector: [
        { scheme: "file", language: "loyalty" },
        { scheme: "file", pattern: "**/schema.toml" },
      ],
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
