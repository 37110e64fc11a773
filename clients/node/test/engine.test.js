// The Node client against a real muelle engine over mutual TLS. The engine and the
// certificates come from the environment (tests/e2e/test_node_client.py sets it up):
//   MUELLE_HOST, MUELLE_CERT_PATH   the gateway and an allowed client's ca/cert/key.pem
//   MUELLE_TEST_IMAGE               an image the engine can pull
//   MUELLE_TEST_DENIED_CERT_PATH    a certificate of the same CA that [authz] refuses
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const muelle = require('../muelle');

const image = process.env.MUELLE_TEST_IMAGE;
if (!image || !process.env.MUELLE_HOST) {
  throw new Error('these tests need a real engine: run them through '
    + 'tests/e2e/test_node_client.py (make test does)');
}

const client = muelle.connect(muelle.optionsFromEnv());
test.after(() => client.close());

test('Version over mutual TLS', async () => {
  const reply = await muelle.call(client, 'Version');
  assert.match(reply.version, /\d+\.\d+/);
  assert.ok(reply.api_version);
});

test('pull streams progress, then ListImages shows the image', async () => {
  const progress = await muelle.stream(client, 'PullImage', { reference: image });
  assert.ok(progress.length > 0);
  const { images } = await muelle.call(client, 'ListImages');
  assert.ok(images.some((i) => i.repo_tags.includes(image)), JSON.stringify(images));
});

test('run: create, start, stream the logs, read the exit code', async () => {
  const out = [];
  const code = await muelle.run(client, image, ['sh', '-c', 'echo hello from node; exit 3'],
    { onOutput: (s, data) => out.push(`${s}:${data.toString()}`), pull: false });
  assert.equal(code, 3);
  assert.deepEqual(out, ['stdout:hello from node\n']);
});

test('an identity the gateway does not allow is refused by name', async () => {
  const denied = muelle.connect(muelle.optionsFromEnv({
    ...process.env, MUELLE_CERT_PATH: process.env.MUELLE_TEST_DENIED_CERT_PATH,
  }));
  try {
    await assert.rejects(muelle.call(denied, 'ListImages'), (err) => {
      assert.equal(err.code, grpc.status.PERMISSION_DENIED);
      assert.match(err.details, /'mallory' is not allowed to call gateway/);
      return true;
    });
  } finally {
    denied.close();
  }
});
