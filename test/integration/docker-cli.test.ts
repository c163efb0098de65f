// The Docker backend through the CLI: interrupted runs leave nothing labelled rstlab.lab,
// and after kill -9, rstlab cleanup removes it all.
import { expect } from 'chai';
import { dockerLeftovers, dockerReachable, fixture, leftovers, rstlab, startCli, until } from '../helpers.js';

describe('the docker backend through the CLI', function () {
  this.timeout(240_000);

  before(function () {
    if (!dockerReachable()) {
      if (process.env.CI) throw new Error('Docker is not reachable, and CI must run the Docker tests');
      this.skip();
    }
  });

  const labIsUp = () => dockerLeftovers().containers.length === 3 && leftovers().tcpdumps.length === 4;

  it('closed-port passes on docker and leaves no container, network or tcpdump', async () => {
    const r = await rstlab('run', 'closed-port', '--backend', 'docker');
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/lab \w+ on docker/);
    expect(r.stdout).to.contain('RST #1 sent by server');
    expect(dockerLeftovers()).to.deep.equal({ containers: [], networks: [] });
    expect(leftovers().tcpdumps).to.deep.equal([]);
  });

  it('SIGINT mid-run leaves nothing labelled rstlab.lab: exit 130', async () => {
    const run = startCli(['run', fixture('scenarios/long-sleep.yaml'), '--backend', 'docker']);
    await until(labIsUp, 120_000, 'the docker lab and its captures');
    await new Promise((r) => setTimeout(r, 500));
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.stderr).to.equal(130);
    expect(dockerLeftovers()).to.deep.equal({ containers: [], networks: [] });
    expect(leftovers().tcpdumps).to.deep.equal([]);
  });

  it('after kill -9, rstlab cleanup removes the containers', async () => {
    const run = startCli(['run', fixture('scenarios/long-sleep.yaml'), '--backend', 'docker']);
    await until(labIsUp, 120_000, 'the docker lab and its captures');
    run.child.kill('SIGKILL');
    await run.done;
    expect(dockerLeftovers().containers).to.have.length(3);
    const r = await rstlab('cleanup');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/removed .*rstlab-\w+-client/);
    expect(dockerLeftovers()).to.deep.equal({ containers: [], networks: [] });
    await until(() => leftovers().tcpdumps.length === 0, 10_000, 'tcpdump to end');
  });
});
