// Node-RED settings for the HTTP route benchmark (bench/http_route.py).
//
// Headless and loopback only: no editor, no admin API, no credentials, no
// projects, no palette changes; logs warnings only. The port comes from
// BDCHUB_NODERED_PORT and the echo backend's URL from BDCHUB_ECHO_URL (used as
// "${BDCHUB_ECHO_URL}" by the flows' http request nodes); the files the flows of
// shapes b and c append to are BDCHUB_RECORD_FILE and BDCHUB_PUBLISH_FILE (read
// with env.get in their function nodes). The flow file is written by the
// harness from bench/http_shapes.py (nodered_flow: one tab a shape), which
// starts it as
//
//   node node_modules/node-red/red.js --settings settings.js --userDir <tmp> <tmp>/flow.json
//
// The flow validates against the hub's own canonical schema file
// (identity_verification_request + common, JSON Schema 2020-12) compiled once
// here with ajv 8 (the validator Node-RED itself ships), with the same
// "resident-id" format rule as schemas/formats.py: 18 characters, 17 digits,
// upper-case X, a known province prefix, a real birth date between 1880 and
// today, and the GB 11643 check character. The validator is handed to the
// flows' function nodes through functionGlobalContext (global.get("validate")).
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv2020 = require("ajv/dist/2020");

const SCHEMAS_DIR = process.env.BDCHUB_SCHEMAS_DIR
  || path.join(__dirname, "..", "..", "schemas", "messages");
const SCHEMA = process.env.BDCHUB_SCHEMA || "identity_verification_request";
// Two-digit prefixes whose xx0000 is in the division snapshot (schemas/divisions.py)
// plus 83 (Taiwan residents' permits); the harness passes the list it computed
// from the snapshot, this default is the same list.
const PROVINCES = new Set((process.env.BDCHUB_ID_PROVINCES
  || "11,12,13,14,15,21,22,23,31,32,33,34,35,36,37,41,42,43,44,45,46,50,51,52,53,54,61,62,63,64,65,71,81,82,83")
  .split(","));

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS = "10X98765432";
const EARLIEST = new Date(Date.UTC(1880, 0, 1));

function residentId(value) {
  if (value.length !== 18 || !/^[0-9]{17}[0-9X]$/.test(value)) return false;
  if (!PROVINCES.has(value.slice(0, 2))) return false;
  const y = +value.slice(6, 10), m = +value.slice(10, 12), d = +value.slice(12, 14);
  const born = new Date(Date.UTC(y, m - 1, d));
  if (born.getUTCFullYear() !== y || born.getUTCMonth() !== m - 1 || born.getUTCDate() !== d) {
    return false;
  }
  const now = new Date();
  const today = Date.UTC(now.getFullYear(), now.getMonth(), now.getDate());
  if (born.getTime() > today || born < EARLIEST) return false;
  let total = 0;
  for (let i = 0; i < 17; i++) total += (value.charCodeAt(i) - 48) * WEIGHTS[i];
  return CHECK_CHARS[total % 11] === value[17];
}

function buildValidator() {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  ajv.addFormat("resident-id", { type: "string", validate: residentId });
  const read = (name) => JSON.parse(fs.readFileSync(path.join(SCHEMAS_DIR, `${name}.schema.json`), "utf8"));
  ajv.addSchema(read("common"));
  return ajv.compile(read(SCHEMA));
}

module.exports = {
  uiHost: "127.0.0.1",
  uiPort: Number(process.env.BDCHUB_NODERED_PORT || 1880),
  httpAdminRoot: false,
  httpNodeRoot: "/",
  disableEditor: true,
  flowFilePretty: false,
  credentialSecret: false,
  editorTheme: { projects: { enabled: false } },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  functionExternalModules: false,
  diagnostics: { enabled: false, ui: false },
  runtimeState: { enabled: false, ui: false },
  telemetry: { enabled: false },
  logging: { console: { level: "warn", metrics: false, audit: false } },
  functionGlobalContext: { validate: buildValidator() },
};
