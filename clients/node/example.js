#!/usr/bin/env node
// Run a command in a container on a muelle engine over mutual TLS:
//   MUELLE_HOST=tcp://10.0.0.2:7400 MUELLE_CERT_PATH=~/.muelle \
//     node example.js registry.example/busybox:1 echo hello
'use strict';

const muelle = require('./muelle');

async function main(argv) {
  const [image, ...cmd] = argv;
  if (!image) {
    console.error('usage: node example.js IMAGE [COMMAND...]');
    return 2;
  }
  const client = muelle.connect(muelle.optionsFromEnv());
  try {
    const version = await muelle.call(client, 'Version');
    console.error(`muelle ${version.version} (API ${version.api_version})`);
    const code = await muelle.run(client, image, cmd, {
      onOutput: (streamName, data) =>
        (streamName === 'stderr' ? process.stderr : process.stdout).write(data),
    });
    return code;
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(`muelle: ${err.details || err.message}`); process.exitCode = 125; },
);
