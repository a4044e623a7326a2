// The console's page script: pin the log's key, and verify what each page shows with
// it (consoleVerify, verify.js). Results are written in words; colour only repeats them.
"use strict";

(function () {
  const STORAGE_KEY = "audit-console.pinned-key";
  const V = globalThis.consoleVerify;
  const decoder = new TextDecoder("utf-8", { fatal: true });

  function show(element, state, message) {
    if (!element) return;
    element.textContent = message;
    element.classList.remove("pending", "verified", "failed", "unverified");
    element.classList.add(state);
  }

  function reason(error) {
    if (error instanceof V.VerificationFailure) return error.message;
    return `${error.name || "error"}: ${error.message || "unexpected failure"}`;
  }

  function decodeText(base64, what) {
    try {
      return decoder.decode(V.decodeBase64(base64, what));
    } catch (error) {
      if (error instanceof V.VerificationFailure) throw error;
      throw new V.VerificationFailure(`${what} is not UTF-8 text`);
    }
  }

  function hashes(list) {
    const text = (list || "").trim();
    return text ? text.split(/\s+/).map((item) => V.decodeBase64(item, "a proof hash")) : [];
  }

  async function pinnedKey() {
    const text = localStorage.getItem(STORAGE_KEY);
    if (!text) return null;
    return V.parseVerifierKey(text);
  }

  async function showPinned() {
    const element = document.getElementById("pinned-key");
    try {
      const key = await pinnedKey();
      if (key) show(element, "verified", `Pinned log key: ${key.text}`);
      else show(element, "unverified", "No log key pinned: pin the log's key on the overview page.");
      return key;
    } catch (error) {
      show(element, "failed", `The pinned log key is unusable: ${reason(error)}.`);
      return null;
    }
  }

  function wirePinForm() {
    const input = document.getElementById("pin-input");
    const status = document.getElementById("pin-status");
    const pin = document.getElementById("pin-button");
    const unpin = document.getElementById("unpin-button");
    if (!input || !pin || !unpin) return;
    pin.addEventListener("click", async () => {
      try {
        const key = await V.parseVerifierKey(input.value);
        localStorage.setItem(STORAGE_KEY, key.text);
        show(status, "verified", `Pinned ${key.text}. Verifying with it.`);
        await run();
      } catch (error) {
        show(status, "failed", `Not pinned: ${reason(error)}.`);
      }
    });
    unpin.addEventListener("click", async () => {
      localStorage.removeItem(STORAGE_KEY);
      show(status, "unverified", "The pinned key is forgotten.");
      await run();
    });
  }

  const NO_KEY = "Not verified: pin the log's key (overview page) to verify in this browser.";

  async function verifyCheckpointBlock(block, key) {
    const status = block.querySelector("[data-status]");
    if (!block.dataset.note) return;
    if (!key) return show(status, "unverified", NO_KEY);
    try {
      const checkpoint = await V.openCheckpoint(decodeText(block.dataset.note, "the note"), key);
      show(
        status,
        "verified",
        `Checkpoint signature verified with the pinned key: tree size ${checkpoint.treeSize}, ` +
          `root ${V.hex(checkpoint.root)}.`,
      );
    } catch (error) {
      show(status, "failed", `Checkpoint signature FAILED: ${reason(error)}.`);
    }
  }

  async function verifyRecordBlock(block, key) {
    const verdict = document.getElementById("verdict");
    const signature = document.getElementById("check-signature");
    const inclusion = document.getElementById("check-inclusion");
    const shown = document.getElementById("check-shown");
    if (!key) {
      for (const item of [signature, inclusion, shown]) show(item, "unverified", NO_KEY);
      return show(verdict, "unverified", NO_KEY);
    }
    const failures = [];
    let checkpoint = null;
    try {
      checkpoint = await V.openCheckpoint(decodeText(block.dataset.checkpoint, "the note"), key);
      if (checkpoint.treeSize !== BigInt(block.dataset.treeSize)) {
        throw new V.VerificationFailure("the signed tree size is not the proof's tree size");
      }
      show(signature, "verified", `Checkpoint signature verified with the pinned key (tree size ${checkpoint.treeSize}).`);
    } catch (error) {
      failures.push("checkpoint signature");
      show(signature, "failed", `Checkpoint signature FAILED: ${reason(error)}.`);
    }
    let record = null;
    try {
      record = V.decodeBase64(block.dataset.record, "the record");
      const leafIndex = BigInt(block.dataset.leafIndex);
      const parsed = JSON.parse(decoder.decode(record));
      if (BigInt(parsed.index) !== leafIndex) {
        throw new V.VerificationFailure("the record's own index is not its leaf index");
      }
      if (!checkpoint) throw new V.VerificationFailure("there is no verified checkpoint to prove it against");
      const leaf = await V.leafHash(record);
      await V.verifyInclusion(leafIndex, checkpoint.treeSize, leaf, hashes(block.dataset.proof), checkpoint.root);
      show(
        inclusion,
        "verified",
        `Inclusion proof verified: leaf hash ${V.hex(leaf)} is leaf ${leafIndex} of the signed tree of size ${checkpoint.treeSize}.`,
      );
    } catch (error) {
      failures.push("inclusion proof");
      show(inclusion, "failed", `Inclusion proof FAILED: ${reason(error)}.`);
    }
    const canonical = document.getElementById("canonical");
    const pretty = document.getElementById("pretty");
    if (!record || !canonical || canonical.textContent !== decoder.decode(record)) {
      failures.push("record shown");
      show(shown, "failed", "Record shown FAILED: the canonical bytes on this page are not the proved leaf.");
    } else {
      // What people read is rendered here from the proved bytes, not taken from the page.
      if (pretty) pretty.textContent = indentJson(decoder.decode(record));
      show(shown, "verified", "Record shown verified: the canonical bytes on this page are the proved leaf, and the readable record is rendered in this browser from them.");
    }
    if (failures.length) {
      show(verdict, "failed", `FAILED: ${failures.join(", ")} did not verify. Do not rely on this record.`);
    } else {
      show(verdict, "verified", `Verified in this browser: record ${block.dataset.leafIndex} is in the log the pinned key signed.`);
    }
  }

  // Canonical JSON (no whitespace) laid out two spaces per level, token by token: no
  // parsing, so every number and string reads exactly as the proved bytes have it.
  function indentJson(text) {
    let out = "";
    let depth = 0;
    let inString = false;
    const newline = () => "\n" + "  ".repeat(depth);
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        out += c;
        if (c === "\\") {
          out += text[++i];
        } else if (c === '"') {
          inString = false;
        }
      } else if (c === '"') {
        inString = true;
        out += c;
      } else if (c === "{" || c === "[") {
        const closing = c === "{" ? "}" : "]";
        if (text[i + 1] === closing) {
          out += c + closing;
          i++;
        } else {
          depth++;
          out += c + newline();
        }
      } else if (c === "}" || c === "]") {
        depth--;
        out += newline() + c;
      } else if (c === ",") {
        out += "," + newline();
      } else if (c === ":") {
        out += ": ";
      } else {
        out += c;
      }
    }
    return out;
  }

  async function verifyHistoryBlock(block, key) {
    const verdict = document.getElementById("verdict");
    const rows = Array.from(block.querySelectorAll("tr.checkpoint"));
    if (!key) {
      rows.forEach((row) => show(row.querySelector("[data-status]"), "unverified", NO_KEY));
      return show(verdict, "unverified", NO_KEY);
    }
    let newest = null;
    try {
      newest = await V.openCheckpoint(decodeText(block.dataset.newest, "the newest note"), key);
    } catch (error) {
      rows.forEach((row) => show(row.querySelector("[data-status]"), "failed", "FAILED: the newest checkpoint does not verify."));
      return show(verdict, "failed", `Newest checkpoint signature FAILED: ${reason(error)}.`);
    }
    let failed = 0;
    for (const row of rows) {
      const status = row.querySelector("[data-status]");
      let checkpoint;
      try {
        checkpoint = await V.openCheckpoint(decodeText(row.dataset.note, "the note"), key);
      } catch (error) {
        failed++;
        show(status, "failed", `Signature FAILED: ${reason(error)}.`);
        continue;
      }
      if (row.dataset.proof === undefined) {
        if (checkpoint.treeSize === newest.treeSize && V.hex(checkpoint.root) === V.hex(newest.root)) {
          show(status, "verified", "Verified: signature (this is the newest checkpoint).");
        } else {
          failed++;
          show(status, "failed", "Consistency FAILED: no proof to the newest checkpoint.");
        }
        continue;
      }
      try {
        await V.verifyConsistency(checkpoint.treeSize, newest.treeSize, hashes(row.dataset.proof), checkpoint.root, newest.root);
        show(status, "verified", `Verified: signature, and the newest tree (${newest.treeSize}) extends this one (${checkpoint.treeSize}).`);
      } catch (error) {
        failed++;
        show(status, "failed", `Consistency proof FAILED: ${reason(error)}.`);
      }
    }
    if (failed) {
      show(verdict, "failed", `FAILED: ${failed} of ${rows.length} checkpoints on this page did not verify.`);
    } else {
      show(verdict, "verified", `Verified in this browser: all ${rows.length} checkpoints on this page are signed by the pinned key, and the newest (tree size ${newest.treeSize}) extends each.`);
    }
  }

  const VERIFIERS = {
    checkpoint: verifyCheckpointBlock,
    record: verifyRecordBlock,
    checkpoints: verifyHistoryBlock,
  };

  async function run() {
    const key = await showPinned();
    for (const block of document.querySelectorAll("[data-verify]")) {
      const verify = VERIFIERS[block.dataset.verify];
      if (verify) await verify(block, key);
    }
    document.body.dataset.verified = "done";
  }

  wirePinForm();
  run();
})();
