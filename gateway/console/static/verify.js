// The console's verifier: RFC 9162 Merkle proofs (SHA-256) and C2SP signed-note
// checkpoints (Ed25519), with WebCrypto only. Pure functions, no page access; every
// failure throws a VerificationFailure whose message says what failed.
"use strict";

(function () {
  class VerificationFailure extends Error {}

  function fail(message) {
    throw new VerificationFailure(message);
  }

  const encoder = new TextEncoder();
  const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

  function decodeBase64(text, what) {
    if (typeof text !== "string" || !BASE64.test(text)) fail(`${what} is not valid base64`);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    // Canonical only: unused bits of the last character must be zero, so one value has
    // exactly one spelling.
    if (encodeBase64(bytes) !== text) fail(`${what} is not canonical base64`);
    return bytes;
  }

  function encodeBase64(bytes) {
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((size, part) => size + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let difference = 0;
    for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
    return difference === 0;
  }

  function hex(bytes) {
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  // RFC 9162 §2.1.1: leaf and interior node hashes.
  function leafHash(data) {
    return sha256(concat(Uint8Array.of(0), data));
  }

  function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  function size(value, what) {
    if (typeof value === "bigint") return value;
    if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
    if (typeof value === "string" && /^(0|[1-9][0-9]*)$/.test(value)) return BigInt(value);
    fail(`${what} is not a whole number`);
  }

  function checkHash(hash, what) {
    if (!(hash instanceof Uint8Array) || hash.length !== 32) fail(`${what} is not 32 bytes`);
  }

  // RFC 9162 §2.1.3.2: verify an inclusion proof.
  async function verifyInclusion(index, treeSize, leaf, proof, root) {
    const leafIndex = size(index, "leaf index");
    const treeSz = size(treeSize, "tree size");
    if (leafIndex >= treeSz) fail("the leaf index is outside the tree");
    checkHash(leaf, "the leaf hash");
    checkHash(root, "the root hash");
    let node = leafIndex;
    let last = treeSz - 1n;
    let current = leaf;
    for (const sibling of proof) {
      checkHash(sibling, "a proof hash");
      if (last === 0n) fail("the proof is too long");
      if (node & 1n || node === last) {
        current = await nodeHash(sibling, current);
        while (!(node & 1n) && node !== 0n) {
          node >>= 1n;
          last >>= 1n;
        }
      } else {
        current = await nodeHash(current, sibling);
      }
      node >>= 1n;
      last >>= 1n;
    }
    if (last !== 0n) fail("the proof is too short");
    if (!equal(current, root)) fail("the proof does not lead to the checkpoint's root hash");
  }

  // RFC 9162 §2.1.4.2: verify a consistency proof. From the empty tree it proves nothing.
  async function verifyConsistency(firstSize, secondSize, proof, firstRoot, secondRoot) {
    const size1 = size(firstSize, "first tree size");
    const size2 = size(secondSize, "second tree size");
    if (size1 === 0n) fail("a proof from the empty tree proves nothing");
    if (size2 < size1) fail("the second tree is smaller than the first");
    if (size1 === size2) {
      if (proof.length) fail("trees of equal size need an empty proof");
      if (!equal(firstRoot, secondRoot)) fail("trees of equal size have different roots");
      return;
    }
    checkHash(firstRoot, "the first root hash");
    checkHash(secondRoot, "the second root hash");
    if (!proof.length) fail("the proof is empty");
    proof.forEach((hash) => checkHash(hash, "a proof hash"));
    const path = (size1 & (size1 - 1n)) === 0n ? [firstRoot, ...proof] : [...proof];
    let node = size1 - 1n;
    let last = size2 - 1n;
    while (node & 1n) {
      node >>= 1n;
      last >>= 1n;
    }
    let first = path[0];
    let second = path[0];
    for (const sibling of path.slice(1)) {
      if (last === 0n) fail("the proof is too long");
      if (node & 1n || node === last) {
        first = await nodeHash(sibling, first);
        second = await nodeHash(sibling, second);
        while (!(node & 1n) && node !== 0n) {
          node >>= 1n;
          last >>= 1n;
        }
      } else {
        second = await nodeHash(second, sibling);
      }
      node >>= 1n;
      last >>= 1n;
    }
    if (last !== 0n) fail("the proof is too short");
    if (!equal(first, firstRoot)) fail("the proof does not lead to the older root hash");
    if (!equal(second, secondRoot)) fail("the proof does not lead to the newer root hash");
  }

  // Key names as golang.org/x/mod/sumdb/note has them: printable, no space, no '+'.
  function checkName(name) {
    if (!name || /[\s+]/u.test(name) || /[\p{Cc}\p{Cf}]/u.test(name)) {
      fail("the key name must be printable, without spaces or '+'");
    }
  }

  async function keyHash(name, publicKey) {
    const digest = await sha256(concat(encoder.encode(name + "\n"), Uint8Array.of(1), publicKey));
    return digest.slice(0, 4);
  }

  // A verifier key `<name>+<8 hex key hash>+<base64(0x01 || 32-byte Ed25519 key)>`.
  async function parseVerifierKey(text) {
    // The key's base64 may itself hold '+': only the first two separate the parts.
    const whole = String(text).trim();
    const first = whole.indexOf("+");
    const second = first < 0 ? -1 : whole.indexOf("+", first + 1);
    if (second < 0) fail("a verifier key has three parts: name+hash+key");
    const name = whole.slice(0, first);
    const hashHex = whole.slice(first + 1, second);
    const encoded = whole.slice(second + 1);
    checkName(name);
    if (!/^[0-9a-f]{8}$/.test(hashHex)) fail("the key hash is not 8 lower-case hex digits");
    const key = decodeBase64(encoded, "the key");
    if (key.length !== 33 || key[0] !== 1) fail("the key is not an Ed25519 key");
    const publicKey = key.slice(1);
    const hash = await keyHash(name, publicKey);
    if (hex(hash) !== hashHex) fail("the key hash does not match the name and key");
    let cryptoKey;
    try {
      cryptoKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, [
        "verify",
      ]);
    } catch (error) {
      fail(`this browser cannot check Ed25519 signatures (${error.name})`);
    }
    return { name, keyHash: hash, cryptoKey, text: `${name}+${hashHex}+${encoded}` };
  }

  const SIGNATURE_PREFIX = "\u2014 ";

  // C2SP signed-note: the text if `key` signed it (other signatures are ignored).
  async function openNote(note, key) {
    if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) fail("the note holds control characters");
    const split = note.lastIndexOf("\n\n");
    if (split < 0 || !note.endsWith("\n")) fail("the note has no signature block");
    const text = note.slice(0, split + 1);
    const lines = note.slice(split + 2, -1).split("\n");
    let found = false;
    for (const line of lines) {
      if (!line.startsWith(SIGNATURE_PREFIX)) fail("a signature line is malformed");
      const rest = line.slice(SIGNATURE_PREFIX.length);
      const space = rest.indexOf(" ");
      const name = space < 0 ? "" : rest.slice(0, space);
      const encoded = space < 0 ? "" : rest.slice(space + 1);
      if (!name || !encoded || encoded.includes(" ")) fail("a signature line is malformed");
      const blob = decodeBase64(encoded, "a signature");
      if (blob.length < 5) fail("a signature is too short");
      if (name !== key.name || !equal(blob.slice(0, 4), key.keyHash)) continue;
      found = true;
      const good = await crypto.subtle.verify(
        { name: "Ed25519" },
        key.cryptoKey,
        blob.slice(4),
        encoder.encode(text),
      );
      if (good) return text;
    }
    if (found) fail("the signature by the pinned key does not verify");
    fail(`the note is not signed by the pinned key ${key.name}`);
  }

  // C2SP tlog-checkpoint: origin, decimal size, base64 root (extension lines ignored).
  async function openCheckpoint(note, key) {
    const text = await openNote(note, key);
    const lines = text.split("\n");
    if (lines.length < 4) fail("the checkpoint lacks its origin, size or root line");
    const [origin, sizeText, rootText] = lines;
    if (origin !== key.name) fail("the checkpoint's origin is not the pinned key's name");
    if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) fail("the checkpoint's tree size is malformed");
    const root = decodeBase64(rootText, "the root hash");
    if (root.length !== 32) fail("the checkpoint's root hash is not 32 bytes");
    return { origin, treeSize: BigInt(sizeText), root };
  }

  globalThis.consoleVerify = Object.freeze({
    VerificationFailure,
    decodeBase64,
    encodeBase64,
    hex,
    leafHash,
    nodeHash,
    verifyInclusion,
    verifyConsistency,
    parseVerifierKey,
    openNote,
    openCheckpoint,
  });
})();
