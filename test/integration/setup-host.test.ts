// lab/setup-host.sh as a newcomer meets it. As root it installs (what .ci/run does); here the
// path that must stop before installing anything: a user without root and without sudo.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../../lab/setup-host.sh', import.meta.url));

describe('lab/setup-host.sh', () => {
  it('as a user with neither root nor sudo, says to run it as root and exits 3, installing nothing', () => {
    // nobody, with a PATH that holds `id` and no sudo (a minimal Debian machine has none).
    const bin = mkdtempSync(join(tmpdir(), 'rstlab-setup-'));
    chmodSync(bin, 0o755);
    symlinkSync('/usr/bin/id', join(bin, 'id'));
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/env', '-i', `PATH=${bin}`, '/bin/bash', script], { encoding: 'utf8' });
    rmSync(bin, { recursive: true });
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.match(/needs root: run it as root/);
    expect(r.stdout).to.not.match(/installed/);
  });

});
