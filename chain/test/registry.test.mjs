// End-to-end test of MuseKeyRegistry against a real local EVM chain.
//
// Starts the anvil binary installed by `npm ci --prefix chain` (or $ANVIL_BIN) on a free
// loopback port with the Cancun hardfork, deploys the committed artifact, and drives every
// rule of the contract with real transactions. Reverts are checked twice: once through
// eth_call, which gives the decoded custom error and its arguments, and once as a mined
// transaction with a fixed gas limit, which must end with status "reverted".
//
// Output: one JSON line per check, then a JSON gas table, a JSON summary and the plain
// line "N passed, N failed". Exit code 0 only if every check passed. anvil is killed on
// every way out (normal end, exception, SIGINT/SIGTERM, overall timeout).
//
//   node test/registry.test.mjs

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ANVIL_BIN = process.env.ANVIL_BIN || join(ROOT, "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
const INSTALL_HINT = "npm ci --prefix chain";

// Whole run, anvil start and compile included. A healthy run takes a few seconds.
const OVERALL_TIMEOUT_MS = 90_000;
// anvil answers within ~40 ms on this machine; allow for a loaded CI box.
const ANVIL_START_TIMEOUT_MS = 15_000;
// Gas limit for transactions that are meant to revert (skips gas estimation).
const REVERT_TX_GAS = 1_000_000n;

// ------------------------------------------------------------------ output

let passed = 0;
let failed = 0;
const started = performance.now();

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj, (_, v) => (typeof v === "bigint" ? v.toString() : v))}\n`);
}

function finish(extra = {}) {
  emit({ summary: { passed, failed, ms: Math.round(performance.now() - started), ...extra } });
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
}

async function check(name, fn) {
  const t0 = performance.now();
  try {
    const detail = await fn();
    passed++;
    emit({ check: name, ok: true, ms: Math.round(performance.now() - t0), ...(detail ?? {}) });
  } catch (err) {
    failed++;
    emit({ check: name, ok: false, ms: Math.round(performance.now() - t0), error: describe(err) });
  }
}

function describe(err) {
  return String(err?.shortMessage ?? err?.message ?? err).split("\n")[0];
}

// ------------------------------------------------------------------ anvil

let anvil = null;

function stopAnvil() {
  if (anvil && anvil.exitCode === null && anvil.signalCode === null) anvil.kill("SIGKILL");
}

process.on("exit", stopAnvil);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    failed++;
    emit({ check: "interrupted", ok: false, error: signal });
    finish();
    stopAnvil();
    process.exit(1);
  });
}
const overallTimer = setTimeout(() => {
  failed++;
  emit({ check: "overall-timeout", ok: false, error: `run exceeded ${OVERALL_TIMEOUT_MS} ms` });
  finish();
  stopAnvil();
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

// Spawns anvil on 127.0.0.1 with a port the kernel picks, and resolves with its RPC URL
// once it prints "Listening on 127.0.0.1:<port>". stdout keeps being read (and dropped)
// after that so anvil never blocks on a full pipe.
function startAnvil() {
  return new Promise((resolve, reject) => {
    anvil = spawn(ANVIL_BIN, ["--host", "127.0.0.1", "--port", "0", "--hardfork", "cancun"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const timer = setTimeout(
      () => reject(new Error(`anvil did not report a port within ${ANVIL_START_TIMEOUT_MS} ms`)),
      ANVIL_START_TIMEOUT_MS,
    );
    anvil.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    anvil.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`anvil exited early (code ${code}, signal ${signal})`));
    });
    createInterface({ input: anvil.stdout }).on("line", (line) => {
      const m = /Listening on (127\.0\.0\.1:\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    });
  });
}

// ------------------------------------------------------------ Ed25519 keys

// DER prefix of a PKCS#8 Ed25519 private key (RFC 8410); the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

// A deterministic Ed25519 key pair for `label`, so that calldata and hence gas figures
// are the same on every run. `hex` is the raw 32-byte public key as 0x-hex.
function edKey(label) {
  const seed = createHash("sha256").update(`musehub-chain-test:${label}`).digest();
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
  const raw = Buffer.from(createPublicKey(priv).export({ format: "jwk" }).x, "base64url");
  return { priv, hex: `0x${raw.toString("hex")}` };
}

// Ed25519 signature (64 bytes, 0x-hex) over the 32 raw bytes of `digestHex`.
function edSign(key, digestHex) {
  return `0x${sign(null, Buffer.from(digestHex.slice(2), "hex"), key.priv).toString("hex")}`;
}

// Checks `sigHex` by the raw public key `keyHex` over the raw bytes of `digestHex`, as a
// hub does for every KeyRotated event.
function edVerify(keyHex, digestHex, sigHex) {
  const x = Buffer.from(keyHex.slice(2), "hex").toString("base64url");
  const pub = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
  return verify(null, Buffer.from(digestHex.slice(2), "hex"), pub, Buffer.from(sigHex.slice(2), "hex"));
}

// A binary CIDv1 (raw codec 0x55, sha2-256 multihash) of `text`: 36 bytes, the size
// chain-design.md budgets for a key bundle CID.
function fakeCid(text) {
  const digest = createHash("sha256").update(text).digest();
  return `0x01551220${digest.toString("hex")}`;
}

// ------------------------------------------------------------------ main

async function main() {
  if (!existsSync(ANVIL_BIN)) {
    failed++;
    emit({ check: "anvil-installed", ok: false, error: `${ANVIL_BIN} not found; run: ${INSTALL_HINT}` });
    return;
  }

  let viem;
  try {
    viem = await import("viem");
  } catch (err) {
    failed++;
    emit({ check: "viem-installed", ok: false, error: `${describe(err)}; run: ${INSTALL_HINT}` });
    return;
  }
  const {
    BaseError,
    ContractFunctionRevertedError,
    createPublicClient,
    createWalletClient,
    defineChain,
    encodeAbiParameters,
    http,
    isAddressEqual,
    keccak256,
    parseEventLogs,
    stringToBytes,
    zeroAddress,
    zeroHash,
  } = viem;

  const artifact = JSON.parse(readFileSync(join(ROOT, "artifacts/MuseKeyRegistry.json"), "utf8"));
  const abi = artifact.abi;

  const t0 = performance.now();
  const url = await startAnvil();
  const anvilStartMs = Math.round(performance.now() - t0);
  emit({ check: "anvil-started", ok: true, ms: anvilStartMs, url });
  passed++;

  const transport = http(url);
  const probe = createPublicClient({ transport });
  const chainId = await probe.getChainId();
  const chain = defineChain({
    id: chainId,
    name: "anvil",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  });
  // anvil mines each transaction at once, so poll for receipts quickly.
  const pub = createPublicClient({ chain, transport, pollingInterval: 10 });
  const wallet = createWalletClient({ chain, transport, pollingInterval: 10 });
  // anvil's pre-funded, unlocked dev accounts; transactions go out via eth_sendTransaction.
  const [alice, bob, carol] = await wallet.getAddresses();

  const gas = {};
  function recordGas(label, used) {
    (gas[label] ??= []).push(used);
  }

  async function deploy(deployAbi, bytecode, args, from, label) {
    const hash = await wallet.deployContract({ abi: deployAbi, bytecode, args, account: from });
    const receipt = await pub.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "success", `${label} deployment reverted`);
    recordGas(label, receipt.gasUsed);
    return receipt.contractAddress;
  }

  // Sends a transaction that must succeed; returns its receipt and decoded events.
  async function send(address, from, functionName, args, gasLabel, callAbi = abi) {
    const hash = await wallet.writeContract({ address, abi: callAbi, functionName, args, account: from });
    const receipt = await pub.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "success", `${functionName} reverted`);
    if (gasLabel) recordGas(gasLabel, receipt.gasUsed);
    return { receipt, events: parseEventLogs({ abi: callAbi, logs: receipt.logs }) };
  }

  // Asserts that the call reverts with custom error `errorName` (and `errorArgs`, if
  // given), both as an eth_call and as a mined transaction.
  async function expectRevert(address, from, functionName, args, errorName, errorArgs) {
    let caught;
    try {
      await pub.simulateContract({ address, abi, functionName, args, account: from });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught, `${functionName} did not revert`);
    const reverted = caught instanceof BaseError ? caught.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (!reverted) throw caught;
    assert.equal(reverted.data?.errorName, errorName, `${functionName}: wrong error`);
    if (errorArgs !== undefined) assert.deepEqual(reverted.data.args, errorArgs, `${functionName}: wrong error args`);

    const hash = await wallet.writeContract({ address, abi, functionName, args, account: from, gas: REVERT_TX_GAS });
    const receipt = await pub.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "reverted", `${functionName}: mined transaction did not revert`);
  }

  function only(events, eventName) {
    const found = events.filter((e) => e.eventName === eventName);
    assert.equal(found.length, 1, `expected one ${eventName} event, got ${found.length}`);
    return found[0].args;
  }

  const hashOf = (handle) => keccak256(stringToBytes(handle));
  const sameAddress = (a, b) => isAddressEqual(a, b);

  // --------------------------------------------------------------- deploy

  let registry;
  await check("deploy without identity registry", async () => {
    registry = await deploy(abi, artifact.bytecode.object, [zeroAddress], alice, "deploy");
    // With address(0) as the only immutable, the code on chain is the artifact's exactly.
    const code = await pub.getCode({ address: registry });
    assert.equal(code, artifact.deployedBytecode.object);
    return { address: registry, chainId };
  });
  if (!registry) return;

  const read = (functionName, args = []) => pub.readContract({ address: registry, abi, functionName, args });

  await check("constants and identityRegistry", async () => {
    const expected = keccak256(
      stringToBytes(
        "MuseKeyRotation(uint256 chainId,address registry,bytes32 handleHash,uint64 nonce,bytes32 newKey,bytes32 keyBundleCidHash)",
      ),
    );
    assert.equal(await read("ROTATION_TYPEHASH"), expected);
    assert.equal(await read("identityRegistry"), zeroAddress);
    assert.equal(await read("handleHash", ["alice"]), hashOf("alice"));
  });

  // Keys, by owner and generation.
  const kA1 = edKey("alice-1");
  const kA2 = edKey("alice-2");
  const kA3 = edKey("alice-3");
  const kA4 = edKey("alice-4");
  const kA5 = edKey("alice-5");
  const kB1 = edKey("bob-1");
  const cid1 = fakeCid("alice bundle 1");
  const cid2 = fakeCid("alice bundle 2");
  const cid3 = fakeCid("alice bundle 3");
  const hA = hashOf("alice");

  // ------------------------------------------------------------- register

  await check("register alice", async () => {
    const sim = await pub.simulateContract({
      address: registry,
      abi,
      functionName: "register",
      args: ["alice", kA1.hex, cid1],
      account: alice,
    });
    assert.equal(sim.result, hA);
    const { receipt, events } = await send(registry, alice, "register", ["alice", kA1.hex, cid1], "register");
    const ev = only(events, "HandleRegistered");
    assert.equal(ev.handleHash, hA);
    assert.equal(ev.handle, "alice");
    assert.ok(sameAddress(ev.owner, alice));
    assert.equal(ev.ed25519Key, kA1.hex);
    assert.equal(ev.keyBundleCid, cid1);

    const block = await pub.getBlock({ blockNumber: receipt.blockNumber });
    const rec = await read("getRecord", ["alice"]);
    assert.ok(sameAddress(rec.owner, alice));
    assert.equal(rec.nonce, 1n);
    assert.equal(BigInt(rec.updatedAt), block.timestamp);
    assert.equal(rec.ed25519Key, kA1.hex);
    assert.equal(rec.agentId, 0n);
    assert.equal(rec.operator, zeroAddress);
    assert.equal(rec.keyBundleCid, cid1);
    assert.deepEqual(await read("getRecordByHash", [hA]), rec);
    assert.equal(await read("nonceOf", ["alice"]), 1n);
    assert.equal(await read("handleOfKey", [kA1.hex]), hA);
    assert.equal(await read("isCurrentKey", ["alice", kA1.hex]), true);
    assert.equal(await read("isCurrentKey", ["alice", zeroHash]), false);
    assert.deepEqual(await read("revokedKeys", ["alice"]), []);
    return { gasUsed: receipt.gasUsed };
  });

  await check("register: duplicate handle -> HandleTaken", async () => {
    await expectRevert(registry, bob, "register", ["alice", kB1.hex, "0x"], "HandleTaken");
    assert.ok(sameAddress((await read("getRecord", ["alice"])).owner, alice));
  });

  const badHandles = {
    uppercase: "Alice",
    "leading dash": "-alice",
    "trailing dash": "alice-",
    "33 chars": "a".repeat(33),
    empty: "",
    space: "al ice",
    underscore: "al_ice",
    dot: "alice.muse",
    "non-ascii": "alicé",
  };
  for (const [what, handle] of Object.entries(badHandles)) {
    await check(`register: ${what} -> InvalidHandle`, () =>
      expectRevert(registry, bob, "register", [handle, kB1.hex, "0x"], "InvalidHandle"),
    );
  }

  await check("register: edge-valid handles", async () => {
    const edges = ["a", "0", "a-b", "a--b", "x".repeat(31) + "9"];
    for (const [i, handle] of edges.entries()) {
      await send(registry, carol, "register", [handle, edKey(`carol-${i}`).hex, "0x"]);
      assert.ok(sameAddress((await read("getRecord", [handle])).owner, carol), handle);
    }
    return { handles: edges };
  });

  await check("register: zero key -> BadKey", () =>
    expectRevert(registry, bob, "register", ["bob", zeroHash, "0x"], "BadKey"),
  );

  await check("register: key of another handle -> KeyInUse", () =>
    expectRevert(registry, bob, "register", ["bob", kA1.hex, "0x"], "KeyInUse"),
  );

  await check("register bob (empty key bundle)", async () => {
    await send(registry, bob, "register", ["bob", kB1.hex, "0x"], "register (empty CID)");
    const rec = await read("getRecord", ["bob"]);
    assert.equal(rec.keyBundleCid, "0x");
    assert.equal(await read("handleOfKey", [kB1.hex]), hashOf("bob"));
  });

  // --------------------------------------------------------------- rotate

  // The digest computed in JS from the spec, to compare with the contract's.
  function specDigest(handle, nonce, newKey, cid) {
    return keccak256(
      encodeAbiParameters(
        [
          { type: "bytes32" },
          { type: "uint256" },
          { type: "address" },
          { type: "bytes32" },
          { type: "uint64" },
          { type: "bytes32" },
          { type: "bytes32" },
        ],
        [
          keccak256(
            stringToBytes(
              "MuseKeyRotation(uint256 chainId,address registry,bytes32 handleHash,uint64 nonce,bytes32 newKey,bytes32 keyBundleCidHash)",
            ),
          ),
          BigInt(chainId),
          registry,
          hashOf(handle),
          nonce,
          newKey,
          keccak256(cid),
        ],
      ),
    );
  }

  await check("rotateKey with old-key Ed25519 signature", async () => {
    const digest = await read("rotationDigest", ["alice", 1n, kA2.hex, cid2]);
    assert.equal(digest, specDigest("alice", 1n, kA2.hex, cid2));
    const sig = edSign(kA1, digest);
    const { events } = await send(
      registry,
      alice,
      "rotateKey",
      ["alice", 1n, kA2.hex, cid2, sig],
      "rotateKey (with 64-byte sig)",
    );
    const ev = only(events, "KeyRotated");
    assert.equal(ev.handleHash, hA);
    assert.equal(ev.nonce, 2n);
    assert.equal(ev.oldKey, kA1.hex);
    assert.equal(ev.newKey, kA2.hex);
    assert.equal(ev.keyBundleCid, cid2);
    assert.equal(ev.oldKeySig, sig);

    // What a hub does with the event: recompute the digest with nonce - 1 from the
    // chain, and verify the stored signature with the old key from the event.
    const hubDigest = await read("rotationDigest", ["alice", ev.nonce - 1n, ev.newKey, ev.keyBundleCid]);
    assert.equal(edVerify(ev.oldKey, hubDigest, ev.oldKeySig), true);
    // And the signature does not verify for any other nonce or key.
    const otherDigest = await read("rotationDigest", ["alice", ev.nonce, ev.newKey, ev.keyBundleCid]);
    assert.equal(edVerify(ev.oldKey, otherDigest, ev.oldKeySig), false);
    assert.equal(edVerify(ev.newKey, hubDigest, ev.oldKeySig), false);

    const rec = await read("getRecord", ["alice"]);
    assert.equal(rec.nonce, 2n);
    assert.equal(rec.ed25519Key, kA2.hex);
    assert.equal(rec.keyBundleCid, cid2);
    assert.equal(await read("isCurrentKey", ["alice", kA1.hex]), false);
    assert.equal(await read("handleOfKey", [kA2.hex]), hA);
  });

  await check("rotateKey: 63- and 65-byte signatures -> BadSignatureLength", async () => {
    for (const len of [1, 63, 65]) {
      const sig = `0x${"ab".repeat(len)}`;
      await expectRevert(registry, alice, "rotateKey", ["alice", 2n, kA3.hex, cid2, sig], "BadSignatureLength");
    }
  });

  await check("rotateKey without signature (recovery)", async () => {
    const { events } = await send(registry, alice, "rotateKey", ["alice", 2n, kA3.hex, cid2, "0x"], "rotateKey (recovery, no sig)");
    const ev = only(events, "KeyRotated");
    assert.equal(ev.nonce, 3n);
    assert.equal(ev.oldKey, kA2.hex);
    assert.equal(ev.newKey, kA3.hex);
    assert.equal(ev.oldKeySig, "0x");
    assert.equal(await read("nonceOf", ["alice"]), 3n);
  });

  await check("wrong expectedNonce -> BadNonce(expected, actual), no sentinel", async () => {
    const max = 2n ** 64n - 1n;
    await expectRevert(registry, alice, "rotateKey", ["alice", 1n, kA4.hex, "0x", "0x"], "BadNonce", [1n, 3n]);
    await expectRevert(registry, alice, "rotateKey", ["alice", 4n, kA4.hex, "0x", "0x"], "BadNonce", [4n, 3n]);
    await expectRevert(registry, alice, "rotateKey", ["alice", max, kA4.hex, "0x", "0x"], "BadNonce", [max, 3n]);
    await expectRevert(registry, alice, "revokeKey", ["alice", max, kA3.hex, 1], "BadNonce", [max, 3n]);
    await expectRevert(registry, alice, "revokeKey", ["alice", 2n, kA3.hex, 1], "BadNonce", [2n, 3n]);
    await expectRevert(registry, alice, "setKeyBundle", ["alice", 0n, cid3], "BadNonce", [0n, 3n]);
    await expectRevert(registry, alice, "setKeyBundle", ["alice", max, cid3], "BadNonce", [max, 3n]);
    assert.equal(await read("nonceOf", ["alice"]), 3n);
  });

  await check("non-owner -> NotOwner on every owner-only call", async () => {
    await expectRevert(registry, bob, "rotateKey", ["alice", 3n, kA4.hex, "0x", "0x"], "NotOwner");
    await expectRevert(registry, bob, "revokeKey", ["alice", 3n, kA3.hex, 1], "NotOwner");
    await expectRevert(registry, bob, "setKeyBundle", ["alice", 3n, cid3], "NotOwner");
    await expectRevert(registry, bob, "setOperator", ["alice", bob], "NotOwner");
    await expectRevert(registry, bob, "linkAgent", ["alice", 0n], "NotOwner");
    await expectRevert(registry, bob, "transferHandle", ["alice", bob], "NotOwner");
  });

  await check("unregistered handle -> UnknownHandle", async () => {
    await expectRevert(registry, bob, "rotateKey", ["nobody", 1n, kA4.hex, "0x", "0x"], "UnknownHandle");
    await expectRevert(registry, bob, "revokeKey", ["nobody", 1n, kA4.hex, 0], "UnknownHandle");
    await expectRevert(registry, bob, "setKeyBundle", ["nobody", 1n, "0x"], "UnknownHandle");
    await expectRevert(registry, bob, "setOperator", ["nobody", bob], "UnknownHandle");
    await expectRevert(registry, bob, "transferHandle", ["nobody", bob], "UnknownHandle");
  });

  await check("rotateKey: zero, reused or foreign key -> BadKey / KeyInUse", async () => {
    await expectRevert(registry, alice, "rotateKey", ["alice", 3n, zeroHash, "0x", "0x"], "BadKey");
    await expectRevert(registry, alice, "rotateKey", ["alice", 3n, kA1.hex, "0x", "0x"], "KeyInUse");
    await expectRevert(registry, alice, "rotateKey", ["alice", 3n, kA3.hex, "0x", "0x"], "KeyInUse");
    await expectRevert(registry, alice, "rotateKey", ["alice", 3n, kB1.hex, "0x", "0x"], "KeyInUse");
  });

  // --------------------------------------------------------------- revoke

  await check("revokeKey: current key", async () => {
    const { receipt, events } = await send(registry, alice, "revokeKey", ["alice", 3n, kA3.hex, 1], "revokeKey (current key)");
    const ev = only(events, "KeyRevoked");
    assert.equal(ev.handleHash, hA);
    assert.equal(ev.key, kA3.hex);
    assert.equal(ev.nonce, 4n);
    assert.equal(ev.reason, 1);
    const block = await pub.getBlock({ blockNumber: receipt.blockNumber });

    const rec = await read("getRecord", ["alice"]);
    assert.equal(rec.ed25519Key, zeroHash);
    assert.equal(rec.nonce, 4n);
    assert.equal(await read("revokedAt", [hA, kA3.hex]), block.timestamp);
    assert.deepEqual(await read("revokedKeys", ["alice"]), [kA3.hex]);
    assert.equal(await read("isCurrentKey", ["alice", kA3.hex]), false);
    assert.equal(await read("handleOfKey", [kA3.hex]), hA);

    const [checkRec, keyRevokedAt, keyHandle] = await read("check", ["alice", kA3.hex]);
    assert.deepEqual(checkRec, rec);
    assert.equal(keyRevokedAt, block.timestamp);
    assert.equal(keyHandle, hA);
    return { revokedAt: keyRevokedAt };
  });

  await check("revokeKey: again -> KeyRevokedAlready; foreign/zero key -> BadKey; reason 4 -> BadReason", async () => {
    await expectRevert(registry, alice, "revokeKey", ["alice", 4n, kA3.hex, 1], "KeyRevokedAlready");
    await expectRevert(registry, alice, "revokeKey", ["alice", 4n, kB1.hex, 1], "BadKey");
    await expectRevert(registry, alice, "revokeKey", ["alice", 4n, kA5.hex, 1], "BadKey");
    await expectRevert(registry, alice, "revokeKey", ["alice", 4n, zeroHash, 1], "BadKey");
    await expectRevert(registry, alice, "revokeKey", ["alice", 4n, kA1.hex, 4], "BadReason", [4]);
  });

  await check("revokeKey: earlier (superseded) key", async () => {
    const { events } = await send(registry, alice, "revokeKey", ["alice", 4n, kA1.hex, 3], "revokeKey (old key)");
    assert.equal(only(events, "KeyRevoked").nonce, 5n);
    assert.deepEqual(await read("revokedKeys", ["alice"]), [kA3.hex, kA1.hex]);
    const [, keyRevokedAt, keyHandle] = await read("check", ["alice", kA1.hex]);
    assert.ok(keyRevokedAt > 0n);
    assert.equal(keyHandle, hA);
    // A superseded key that was never revoked: known to the handle, not revoked.
    const [rec, kA2RevokedAt, kA2Handle] = await read("check", ["alice", kA2.hex]);
    assert.equal(rec.ed25519Key, zeroHash);
    assert.equal(kA2RevokedAt, 0n);
    assert.equal(kA2Handle, hA);
  });

  await check("rotateKey after revoking the current key (oldKey 0)", async () => {
    const { events } = await send(registry, alice, "rotateKey", ["alice", 5n, kA4.hex, cid2, "0x"]);
    const ev = only(events, "KeyRotated");
    assert.equal(ev.nonce, 6n);
    assert.equal(ev.oldKey, zeroHash);
    assert.equal(ev.newKey, kA4.hex);
    assert.equal(await read("isCurrentKey", ["alice", kA4.hex]), true);
  });

  // ---------------------------------------------- bundle, operator, agent

  await check("setKeyBundle", async () => {
    const { events } = await send(registry, alice, "setKeyBundle", ["alice", 6n, cid3], "setKeyBundle");
    const ev = only(events, "KeyBundleUpdated");
    assert.equal(ev.handleHash, hA);
    assert.equal(ev.nonce, 7n);
    assert.equal(ev.keyBundleCid, cid3);
    const rec = await read("getRecord", ["alice"]);
    assert.equal(rec.keyBundleCid, cid3);
    assert.equal(rec.ed25519Key, kA4.hex);
  });

  await check("setOperator", async () => {
    const { events } = await send(registry, alice, "setOperator", ["alice", carol], "setOperator");
    const ev = only(events, "OperatorSet");
    assert.equal(ev.handleHash, hA);
    assert.ok(sameAddress(ev.operator, carol));
    const rec = await read("getRecord", ["alice"]);
    assert.ok(sameAddress(rec.operator, carol));
    assert.equal(rec.nonce, 8n);
    // The operator is not the owner: it cannot touch keys.
    await expectRevert(registry, carol, "rotateKey", ["alice", 8n, kA5.hex, "0x", "0x"], "NotOwner");
    await expectRevert(registry, carol, "setKeyBundle", ["alice", 8n, "0x"], "NotOwner");
  });

  await check("linkAgent without identity registry -> NoIdentityRegistry", () =>
    expectRevert(registry, alice, "linkAgent", ["alice", 0n], "NoIdentityRegistry"),
  );

  // ------------------------------------------------------------- transfer

  await check("transferHandle clears the operator", async () => {
    await expectRevert(registry, alice, "transferHandle", ["alice", zeroAddress], "ZeroAddress");
    const { events } = await send(registry, alice, "transferHandle", ["alice", bob], "transferHandle (clears operator)");
    const moved = only(events, "HandleTransferred");
    assert.equal(moved.handleHash, hA);
    assert.ok(sameAddress(moved.from, alice));
    assert.ok(sameAddress(moved.to, bob));
    assert.equal(only(events, "OperatorSet").operator, zeroAddress);
    const rec = await read("getRecord", ["alice"]);
    assert.ok(sameAddress(rec.owner, bob));
    assert.equal(rec.operator, zeroAddress);
    assert.equal(rec.nonce, 9n);
    assert.equal(rec.ed25519Key, kA4.hex);
    assert.equal(rec.keyBundleCid, cid3);
  });

  await check("after transfer: old owner NotOwner, new owner rotates", async () => {
    await expectRevert(registry, alice, "rotateKey", ["alice", 9n, kA5.hex, "0x", "0x"], "NotOwner");
    await expectRevert(registry, alice, "transferHandle", ["alice", alice], "NotOwner");
    const digest = await read("rotationDigest", ["alice", 9n, kA5.hex, cid3]);
    const sig = edSign(kA4, digest);
    const { events } = await send(registry, bob, "rotateKey", ["alice", 9n, kA5.hex, cid3, sig]);
    const ev = only(events, "KeyRotated");
    assert.equal(ev.nonce, 10n);
    assert.equal(edVerify(ev.oldKey, digest, ev.oldKeySig), true);
  });

  await check("views of an unregistered handle", async () => {
    const rec = await read("getRecord", ["nobody"]);
    assert.equal(rec.owner, zeroAddress);
    assert.equal(rec.nonce, 0n);
    assert.equal(await read("nonceOf", ["nobody"]), 0n);
    assert.equal(await read("isCurrentKey", ["nobody", kA1.hex]), false);
    const [checkRec, keyRevokedAt, keyHandle] = await read("check", ["nobody", kA1.hex]);
    assert.equal(checkRec.owner, zeroAddress);
    assert.equal(keyRevokedAt, 0n);
    assert.equal(keyHandle, hA);
  });

  // ----------------------------------------- linkAgent with an ERC-8004 stand-in

  await check("linkAgent against an ERC-721 identity registry", async () => {
    const mock = await compileMock();
    const identity = await deploy(mock.abi, mock.bytecode, [], alice, "deploy MockIdentityRegistry");
    const linked = await deploy(abi, artifact.bytecode.object, [identity], alice, "deploy (with identity registry)");
    assert.ok(sameAddress(await pub.readContract({ address: linked, abi, functionName: "identityRegistry" }), identity));

    await send(identity, alice, "register", [alice], null, mock.abi); // agent 0
    await send(identity, bob, "register", [bob], null, mock.abi); // agent 1
    const kAgent = edKey("agent-alice");
    await send(linked, alice, "register", ["agent-alice", kAgent.hex, "0x"]);

    await expectRevert(linked, alice, "linkAgent", ["agent-alice", 1n], "NotAgentOwner");
    await expectRevert(linked, alice, "linkAgent", ["agent-alice", 99n], "NotAgentOwner");
    await expectRevert(linked, bob, "linkAgent", ["agent-alice", 1n], "NotOwner");

    const { events } = await send(linked, alice, "linkAgent", ["agent-alice", 0n], "linkAgent");
    const ev = only(events, "AgentLinked");
    assert.equal(ev.handleHash, hashOf("agent-alice"));
    assert.equal(ev.agentId, 0n);
    const rec = await pub.readContract({ address: linked, abi, functionName: "getRecord", args: ["agent-alice"] });
    assert.equal(rec.agentId, 1n, "agentId is stored plus one");
    assert.equal(rec.nonce, 2n);
  });

  emit({ gas: Object.fromEntries(Object.entries(gas).map(([label, used]) => [label, used.map(String)])) });
  // anvil mines one block per transaction, reverted ones included.
  return { anvilStartMs, transactions: await pub.getBlockNumber() };
}

// Compiles test/MockIdentityRegistry.sol with the same pinned solc-js and settings as the
// registry. It exists only for this test, so it is compiled here and not committed.
async function compileMock() {
  const solc = (await import("solc")).default;
  const artifact = JSON.parse(readFileSync(join(ROOT, "artifacts/MuseKeyRegistry.json"), "utf8"));
  const unit = "test/MockIdentityRegistry.sol";
  const input = {
    language: "Solidity",
    sources: { [unit]: { content: readFileSync(join(ROOT, unit), "utf8") } },
    settings: {
      ...artifact.compiler.settings,
      outputSelection: { [unit]: { MockIdentityRegistry: ["abi", "evm.bytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) throw new Error(errors[0].formattedMessage);
  const contract = output.contracts[unit].MockIdentityRegistry;
  return { abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` };
}

let extra = {};
try {
  extra = (await main()) ?? {};
} catch (err) {
  failed++;
  emit({ check: "harness", ok: false, error: describe(err) });
} finally {
  clearTimeout(overallTimer);
  stopAnvil();
}
if (passed + failed === 0) failed++;
finish(extra);
process.exit(failed === 0 ? 0 : 1);
