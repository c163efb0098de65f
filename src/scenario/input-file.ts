// Reading a file a user names (a scenario, a ruleset, an expectation file): opened
// non-blocking and judged by the open file itself, so a FIFO is not waited on, a device is
// not read forever, and what is read is the regular file that was checked; bounded, so a
// huge file is refused before it is read.
import { constants, open, type FileHandle } from 'node:fs/promises';
import { InputError } from '../errors.js';

/** The text of `file`, or an InputError naming `what` it should have been. */
export async function readInputFile(file: string, what: string, maxBytes: number): Promise<string> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) throw new InputError(`not a regular file (${what} is a regular file)`, file);
    if (st.size > maxBytes) throw new InputError(`the file is ${st.size} bytes; ${what} may be at most ${maxBytes} (${Math.round(maxBytes / 1024 / 1024)} MB)`, file);
    // what fstat saw is what is read, however the file changes meanwhile
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await handle.read(buf, 0, st.size, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`cannot read ${what}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, file);
  } finally {
    await handle?.close();
  }
}
