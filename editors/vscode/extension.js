// The wardgate extension: starts `wardgate lsp` for `.ward` files.
//
// The grammar and language configuration are declared in package.json; this
// file only runs the language client (diagnostics, hover, definition,
// references, completion, formatting, symbols, quick fixes all come from the
// server).
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration("wardgate");
  const command = config.get("server.path") || "wardgate";
  const args = ["lsp", ...(config.get("server.extraArgs") || [])];
  return { run: { command, args }, debug: { command, args } };
}

async function start(context) {
  client = new LanguageClient(
    "wardgate",
    "Wardgate",
    serverOptions(),
    {
      documentSelector: [
        { scheme: "file", language: "ward" },
        { scheme: "untitled", language: "ward" },
      ],
    },
  );
  try {
    await client.start();
  } catch (e) {
    vscode.window.showErrorMessage(
      `wardgate: cannot start \`${serverOptions().run.command} lsp\`: ${e.message}. ` +
        "Install wardgate or set `wardgate.server.path`.",
    );
  }
  context.subscriptions.push(client);
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("wardgate.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("wardgate.server")) {
        await vscode.commands.executeCommand("wardgate.restartServer");
      }
    }),
  );
  await start(context);
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
