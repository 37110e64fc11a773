// A Node.js client of muelle's engine API (muelle.engine.v1), built from protos/ at run
// time with @grpc/proto-loader: no generated or hand-written message code. It speaks
// mutual TLS to a gateway on tcp:// (Docker's file names: ca.pem, cert.pem, key.pem).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The repository's protos/, unless MUELLE_PROTOS points elsewhere (an installed copy).
const PROTOS = process.env.MUELLE_PROTOS || path.join(__dirname, '..', '..', 'protos');

function loadEngine() {
  const definition = protoLoader.loadSync('muelle/engine/v1/engine.proto', {
    includeDirs: [PROTOS],
    keepCase: true, // field names as in the .proto files (snake_case)
    longs: String, // int64 sizes do not fit a JS number
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).muelle.engine.v1;
}

// Where the gateway is and the TLS files, as the muelle CLI reads them:
// MUELLE_HOST=tcp://host:port, MUELLE_CERT_PATH=dir with ca.pem, cert.pem, key.pem
// (or MUELLE_TLS_CACERT, MUELLE_TLS_CERT, MUELLE_TLS_KEY one by one).
function optionsFromEnv(env = process.env) {
  const host = env.MUELLE_HOST || '';
  if (!host.startsWith('tcp://')) {
    throw new Error('MUELLE_HOST must be tcp://host:port (the gateway over mutual TLS)');
  }
  const dir = env.MUELLE_CERT_PATH || '';
  const file = (name, given) => given || (dir && path.join(dir, name));
  const options = {
    address: host.slice('tcp://'.length),
    ca: file('ca.pem', env.MUELLE_TLS_CACERT),
    cert: file('cert.pem', env.MUELLE_TLS_CERT),
    key: file('key.pem', env.MUELLE_TLS_KEY),
  };
  for (const key of ['ca', 'cert', 'key']) {
    if (!options[key]) throw new Error('set MUELLE_CERT_PATH (ca.pem, cert.pem, key.pem)');
  }
  return options;
}

// An engine client over mutual TLS: our certificate for the gateway, the CA its
// certificate must be signed by.
function connect({ address, ca, cert, key }) {
  const Engine = loadEngine().Engine;
  const credentials = grpc.credentials.createSsl(
    fs.readFileSync(ca), fs.readFileSync(key), fs.readFileSync(cert));
  return new Engine(address, credentials);
}

// A unary call as a promise; the error carries the gateway's message and gRPC code.
function call(client, method, request = {}) {
  return new Promise((resolve, reject) => {
    client[method](request, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

// A server stream collected, each message given to onMessage as it arrives.
function stream(client, method, request, onMessage = () => {}) {
  return new Promise((resolve, reject) => {
    const messages = [];
    const s = client[method](request);
    s.on('data', (m) => { messages.push(m); onMessage(m); });
    s.on('error', reject);
    s.on('end', () => resolve(messages));
  });
}

// Pull an image, run a command in a container, stream its output, return its exit
// code; the container is removed afterwards.
async function run(client, image, cmd, { onOutput = () => {}, pull = true } = {}) {
  if (pull) await stream(client, 'PullImage', { reference: image });
  const created = await call(client, 'CreateContainer', {
    image, cmd: { values: cmd }, network_mode: 'none',
  });
  const id = created.id;
  try {
    await call(client, 'StartContainer', { container: id });
    // Follow the log until the container exits: every byte it wrote, in order.
    await stream(client, 'ContainerLogs',
      { container: id, follow: true, stdout: true, stderr: true },
      (entry) => onOutput(entry.stream, entry.data));
    const waited = await call(client, 'WaitContainer', { container: id });
    return waited.exit_code;
  } finally {
    await call(client, 'RemoveContainer', { container: id, force: true }).catch(() => {});
  }
}

module.exports = { PROTOS, loadEngine, optionsFromEnv, connect, call, stream, run };
