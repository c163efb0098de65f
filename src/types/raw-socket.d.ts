// The part of the raw-socket package (no types of its own) that the agent uses.
declare module 'raw-socket' {
  export interface Socket {
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      address: string,
      beforeCallback: (() => void) | null,
      afterCallback: (error: Error | null, bytes: number) => void,
    ): void;
    close(): void;
  }
  export const Protocol: { None: number; ICMP: number; TCP: number; UDP: number; ICMPv6: number };
  export const AddressFamily: { IPv4: number; IPv6: number };
  export function createSocket(options: { protocol?: number; addressFamily?: number; bufferSize?: number }): Socket;
  export function createChecksum(...parts: Buffer[]): number;
  export function writeChecksum(buffer: Buffer, offset: number, checksum: number): Buffer;
}
