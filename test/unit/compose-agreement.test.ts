// docker-compose.yml describes the same lab the docker backend builds (for bringing one up
// by hand); this keeps the two from drifting: image, networks, addresses, capabilities, sysctls.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { TOPOLOGY, TOPOLOGY6, type HostName } from '../../src/vocabulary.js';
import { CAPABILITIES, DIST_MOUNT, SYSCTLS } from '../../src/lab/docker/docker-backend.js';
import { LATEST_IMAGE } from '../../src/lab/docker/image.js';

// This file runs from dist/test/unit/; the compose file lives at the top of the source tree.
const root = fileURLToPath(new URL('../../../', import.meta.url));

interface ComposeService {
  build?: { context?: string; dockerfile?: string; args?: Record<string, string> };
  image?: string;
  hostname?: string;
  init?: boolean;
  cap_add?: string[];
  privileged?: boolean;
  sysctls?: Record<string, string | number>;
  volumes?: string[];
  networks?: Record<string, { ipv4_address?: string; ipv6_address?: string }>;
  command?: string[];
}
interface Compose {
  services: Record<string, ComposeService>;
  networks: Record<string, { internal?: boolean; enable_ipv6?: boolean; driver_opts?: Record<string, string>; ipam?: { config?: { subnet?: string; gateway?: string }[] } }>;
}

const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;
const HOSTS: HostName[] = ['client', 'firewall', 'server'];

function service(host: HostName): ComposeService {
  const s = compose.services[host];
  if (!s) throw new Error(`docker-compose.yml has no service ${host}`);
  return s;
}

/** The compose network whose subnet is this one. */
function networkWithSubnet(subnet: string): string {
  const names = Object.entries(compose.networks)
    .filter(([, n]) => n.ipam?.config?.some((c) => c.subnet === subnet))
    .map(([name]) => name);
  expect(names, `networks with subnet ${subnet}`).to.have.length(1);
  return names[0] as string;
}

describe('docker-compose.yml agrees with the docker backend', () => {
  const netA = networkWithSubnet(TOPOLOGY.subnets.a);
  const netB = networkWithSubnet(TOPOLOGY.subnets.b);

  it('has exactly the three lab hosts', () => {
    expect(Object.keys(compose.services).sort()).to.deep.equal([...HOSTS].sort());
  });

  it('has the two lab subnets as networks that route (not internal) and do no NAT, their bridges off the hosts\' addresses', () => {
    expect(Object.keys(compose.networks).sort()).to.deep.equal([netA, netB].sort());
    const used = new Set<string>([TOPOLOGY.client.address, TOPOLOGY.server.address, ...Object.values(TOPOLOGY.firewall.addresses), TOPOLOGY6.client.address, TOPOLOGY6.server.address, ...Object.values(TOPOLOGY6.firewall.addresses)]);
    for (const name of [netA, netB]) {
      const n = compose.networks[name];
      // Docker's rules for internal networks drop routed traffic on the host (see the compose file).
      expect(n?.internal ?? false, `${name} internal`).to.equal(false);
      expect(n?.driver_opts?.['com.docker.network.bridge.enable_ip_masquerade'], `${name} masquerade`).to.equal('false');
      for (const c of n?.ipam?.config ?? []) {
        // Docker puts the gateway address on the host's bridge: it must not be a lab host's.
        expect(c.gateway, `${name} gateway`).to.be.a('string');
        expect(used.has(c.gateway as string), `${name} gateway ${c.gateway} is a lab address`).to.equal(false);
      }
    }
  });

  it('runs every host on the image the backend builds (which holds the host\'s node), building none of its own', () => {
    for (const h of HOSTS) {
      const s = service(h);
      expect(s.image, h).to.equal(LATEST_IMAGE);
      expect(s.build, h).to.equal(undefined);
      expect(s.volumes, h).to.deep.equal([`./dist/src:${DIST_MOUNT}:ro`]);
      expect(s.init, h).to.equal(true);
      expect(s.hostname, h).to.equal(h);
    }
  });

  it('gives each host the lab\'s addresses, on the right networks', () => {
    expect(service('client').networks).to.deep.equal({ [netA]: { ipv4_address: TOPOLOGY.client.address, ipv6_address: TOPOLOGY6.client.address } });
    expect(service('server').networks).to.deep.equal({ [netB]: { ipv4_address: TOPOLOGY.server.address, ipv6_address: TOPOLOGY6.server.address } });
    expect(service('firewall').networks).to.deep.equal({
      [netA]: { ipv4_address: TOPOLOGY.firewall.addresses.eth0, ipv6_address: TOPOLOGY6.firewall.addresses.eth0 },
      [netB]: { ipv4_address: TOPOLOGY.firewall.addresses.eth1, ipv6_address: TOPOLOGY6.firewall.addresses.eth1 },
    });
    // dual-stack: each network has the lab's IPv6 subnet too
    expect(compose.networks[netA]?.enable_ipv6, netA).to.equal(true);
    expect(compose.networks[netB]?.enable_ipv6, netB).to.equal(true);
    expect(networkWithSubnet(TOPOLOGY6.subnets.a)).to.equal(netA);
    expect(networkWithSubnet(TOPOLOGY6.subnets.b)).to.equal(netB);
    // Docker names a container's interfaces in the order its networks attach, by name: the
    // firewall's client-side network must sort first to be its eth0.
    expect(netA < netB, `${netA} sorts before ${netB}`).to.equal(true);
  });

  it('routes client and server through the firewall', () => {
    expect(service('client').command?.join(' ')).to.contain(`ip route replace default via ${TOPOLOGY.client.gateway}`).and.contain(`ip -6 route replace default via ${TOPOLOGY6.client.gateway}`);
    expect(service('server').command?.join(' ')).to.contain(`ip route replace default via ${TOPOLOGY.server.gateway}`).and.contain(`ip -6 route replace default via ${TOPOLOGY6.server.gateway}`);
  });

  it('has the backend\'s capabilities and sysctls, and nothing privileged', () => {
    for (const h of HOSTS) {
      const s = service(h);
      expect([...(s.cap_add ?? [])].sort(), h).to.deep.equal([...CAPABILITIES].sort());
      expect(s.privileged ?? false, h).to.equal(false);
      const sysctls = Object.fromEntries(Object.entries(s.sysctls ?? {}).map(([k, v]) => [k, String(v)]));
      expect(sysctls, h).to.deep.equal(SYSCTLS[h]);
    }
  });
});
