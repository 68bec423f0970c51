// Compiles contracts/*.sol with the pinned solc-js and writes artifacts/MuseKeyRegistry.json.
//
// The artifact is committed so that building musehub never needs node or solc. The output
// depends only on the sources, the compiler version and the settings below: running this
// twice gives byte-identical files.
//
//   node compile.mjs           write artifacts/MuseKeyRegistry.json
//   node compile.mjs --check   compile in memory; exit 1 if the committed artifact differs
//
// Exit codes: 0 ok, 1 artifact out of date (--check), 2 compile error or bad setup.

import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(fileURLToPath(import.meta.url));
const CONTRACTS_DIR = "contracts";
const CONTRACT_NAME = "MuseKeyRegistry";
const MAIN_SOURCE = `${CONTRACTS_DIR}/${CONTRACT_NAME}.sol`;
const ARTIFACT = join(ROOT, "artifacts", `${CONTRACT_NAME}.json`);

// The compiler release package.json pins. A different soljson would give different
// bytecode, so refuse to run with anything else.
const SOLC_VERSION_PREFIX = "0.8.37+";

// Everything that changes the bytecode. `evmVersion` is Cancun because that is what the
// Avalanche C-Chain runs (solc 0.8.37 defaults to Osaka, whose opcodes it may lack).
// `bytecodeHash: "none"` leaves the metadata hash out of the bytecode, so the bytecode
// changes only when the code does, not when a comment or a file path does; the artifact
// still pins the exact sources through `sourceSha256`. (The solc version stays appended
// as CBOR, as usual.)
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none" },
};

function fail(code, message) {
  process.stderr.write(`compile: ${message}\n`);
  process.exit(code);
}

function sha256(text) {
  return createHash("sha256").update(text).digest("hex");
}

// Every .sol file under contracts/, keyed by the source unit name solc sees
// ("contracts/X.sol"), in sorted order so the input never depends on directory order.
function readSources() {
  const names = readdirSync(join(ROOT, CONTRACTS_DIR))
    .filter((name) => name.endsWith(".sol"))
    .sort();
  const sources = {};
  for (const name of names) {
    const unit = `${CONTRACTS_DIR}/${name}`;
    sources[unit] = { content: readFileSync(join(ROOT, unit), "utf8") };
  }
  if (!(MAIN_SOURCE in sources)) fail(2, `${MAIN_SOURCE} not found`);
  return sources;
}

async function loadSolc() {
  try {
    return (await import("solc")).default;
  } catch (err) {
    fail(2, `cannot load solc-js (${err.message}); run: npm ci --prefix chain`);
  }
}

// Compiles and returns the artifact text (pretty JSON with a trailing newline).
async function build() {
  const solc = await loadSolc();
  const version = solc.version();
  if (!version.startsWith(SOLC_VERSION_PREFIX)) {
    fail(2, `solc ${version} is not the pinned ${SOLC_VERSION_PREFIX}*; run: npm ci --prefix chain`);
  }

  const sources = readSources();
  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: {
        [MAIN_SOURCE]: { [CONTRACT_NAME]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };

  // Every import must be one of the files passed in: nothing is read from elsewhere.
  const findImports = (path) => ({ error: `import ${path} is not under ${CONTRACTS_DIR}/` });
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));

  // Warnings fail the build too: the pinned compiler on pinned sources should be silent.
  const diagnostics = output.errors ?? [];
  for (const d of diagnostics) process.stderr.write(d.formattedMessage ?? `${d.severity}: ${d.message}\n`);
  if (diagnostics.length > 0) fail(2, `${diagnostics.length} compiler diagnostic(s)`);

  const contract = output.contracts?.[MAIN_SOURCE]?.[CONTRACT_NAME];
  if (!contract) fail(2, `solc produced no ${CONTRACT_NAME}`);

  const sourceSha256 = {};
  for (const [unit, { content }] of Object.entries(sources)) sourceSha256[unit] = sha256(content);

  const artifact = {
    contractName: CONTRACT_NAME,
    sourceName: MAIN_SOURCE,
    abi: contract.abi,
    // The `{ object }` shape is what solc's own output and foundry use; alloy's `sol!`
    // reads the bytecode from `bytecode.object`.
    bytecode: { object: `0x${contract.evm.bytecode.object}` },
    deployedBytecode: { object: `0x${contract.evm.deployedBytecode.object}` },
    compiler: { version, settings: SETTINGS },
    sourceSha256,
  };
  return `${JSON.stringify(artifact, null, 2)}\n`;
}

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== "--check");
if (unknown.length > 0) fail(2, `unknown argument ${unknown[0]} (usage: node compile.mjs [--check])`);
const checkOnly = args.includes("--check");

const text = await build();
const relArtifact = `artifacts/${CONTRACT_NAME}.json`;
if (checkOnly) {
  if (!existsSync(ARTIFACT)) fail(1, `${relArtifact} is missing; run: node compile.mjs`);
  const committed = readFileSync(ARTIFACT, "utf8");
  if (committed !== text) {
    fail(1, `${relArtifact} does not match the sources; run: node compile.mjs (and commit the result)`);
  }
  process.stdout.write(`compile: ${relArtifact} is up to date (sha256 ${sha256(text)})\n`);
} else {
  mkdirSync(dirname(ARTIFACT), { recursive: true });
  writeFileSync(ARTIFACT, text);
  process.stdout.write(`compile: wrote ${relArtifact} (sha256 ${sha256(text)})\n`);
}
