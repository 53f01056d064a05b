/**
 * A restricted Python unpickler (protocols 2 to 5, what `torch.save` writes) that builds plain
 * values only: None, bools, ints, floats, strings, bytes, lists, tuples, dicts and sets. A pickle
 * names the functions it wants called (GLOBAL, STACK_GLOBAL); each name goes to `resolveGlobal`,
 * which either hands back a `PickleGlobal` the caller implements in JavaScript or refuses, so
 * nothing a file asks for is ever run. Persistent ids (torch's storages) go to `persistentLoad`.
 *
 * The pickle is untrusted: every length is checked against the bytes left before it is used,
 * integers are bounded, and anything malformed is a `PickleError` that names the opcode and its
 * position.
 */

export class PickleError extends Error {
  override name = 'PickleError';
}

/** A Python tuple (kept apart from lists, which are JS arrays). */
export class PyTuple {
  constructor(readonly items: PickleValue[]) {}
}

/** A global the caller allows: `call` runs for REDUCE/NEWOBJ; without it the global is only a value. */
export interface PickleGlobal {
  readonly qualname: string;
  call?(args: PickleValue[]): PickleValue;
  /** BUILD on a value this global made (e.g. OrderedDict attributes); without it BUILD is refused. */
  build?(target: PickleValue, state: PickleValue): PickleValue;
}

// deno-lint-ignore no-explicit-any
export type PickleValue = any;

export interface UnpickleOptions {
  resolveGlobal(module: string, name: string): PickleGlobal;
  persistentLoad?(pid: PickleValue): PickleValue;
}

export interface UnpickleResult {
  value: PickleValue;
  /** Position just after the STOP opcode: legacy torch files put more pickles after it. */
  end: number;
}

/** Largest Python int (LONG1/LONG4) read, in bytes: ints in checkpoints are small. */
const MAX_LONG_BYTES = 16;
/** Longest module or attribute name of a GLOBAL. */
const MAX_NAME = 256;

const MARK = Symbol('mark');

/** Where BUILD finds who made a value, so only that global's `build` may change it. */
const madeBy = new WeakMap<object, PickleGlobal>();

/** Unpickles one pickle starting at `start`. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions, start = 0): UnpickleResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: PickleValue[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = start;

  const fail = (message: string, at = pos): never => {
    throw new PickleError(`pickle at byte ${at}: ${message}`);
  };
  const need = (n: number, what: string) => {
    if (n > bytes.length - pos) fail(`${what} needs ${n} bytes but ${bytes.length - pos} are left`);
  };
  const u8 = () => (need(1, 'an argument'), bytes[pos++]);
  const u16 = () => (need(2, 'an argument'), pos += 2, view.getUint16(pos - 2, true));
  const u32 = () => (need(4, 'an argument'), pos += 4, view.getUint32(pos - 4, true));
  const u64 = (what: string) => {
    need(8, what);
    const value = view.getUint32(pos, true) + view.getUint32(pos + 4, true) * 2 ** 32;
    pos += 8;
    if (!Number.isSafeInteger(value)) fail(`${what} ${value} is too large`);
    return value;
  };
  const take = (n: number, what: string): Uint8Array => {
    need(n, what);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  const utf8 = (raw: Uint8Array, at: number): string => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      return fail('a string is not valid UTF-8', at);
    }
  };
  const line = (what: string): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > MAX_NAME) fail(`${what} is not a line of at most ${MAX_NAME} characters`);
    const text = latin1(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const pop = (): PickleValue => {
    if (stack.length === 0) fail('the stack is empty');
    const value = stack.pop();
    if (value === MARK) fail('a mark where a value was expected');
    return value;
  };
  const top = (): PickleValue => {
    const value = stack[stack.length - 1];
    if (stack.length === 0 || value === MARK) fail('no value on the stack');
    return value;
  };
  const popMark = (): PickleValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail('no mark on the stack');
    const items = stack.splice(at);
    items.shift();
    return items;
  };
  const memoGet = (index: number) => {
    if (!memo.has(index)) fail(`memo entry ${index} was never stored`);
    return memo.get(index);
  };
  const global = (module: string, name: string): PickleGlobal => {
    if (!/^[A-Za-z_][\w.]*$/.test(module) || !/^[A-Za-z_][\w.]*$/.test(name)) {
      fail(`global '${printable(module)}.${printable(name)}' is not a Python name`);
    }
    return options.resolveGlobal(module, name);
  };
  const call = (callee: PickleValue, args: PickleValue, how: string): PickleValue => {
    if (!isGlobal(callee) || !callee.call) fail(`${how} on ${describeValue(callee)}, which cannot be called`);
    if (!(args instanceof PyTuple)) fail(`${how} of '${callee.qualname}' with ${describeValue(args)} instead of a tuple of arguments`);
    const result = callee.call!(args.items);
    if (result !== null && typeof result === 'object') madeBy.set(result, callee);
    return result;
  };
  const setItems = (dict: PickleValue, items: PickleValue[]) => {
    if (!(dict instanceof Map)) fail(`SETITEMS on ${describeValue(dict)}, not a dict`);
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const appendItems = (list: PickleValue, items: PickleValue[]) => {
    if (!Array.isArray(list)) fail(`APPENDS on ${describeValue(list)}, not a list`);
    for (const item of items) list.push(item);
  };

  if (start < 0 || start >= bytes.length) fail('no pickle here (the data ended)', start);
  for (;;) {
    if (pos >= bytes.length) fail('the data ended before STOP');
    const at = pos;
    const op = bytes[pos++];
    switch (op) {
      case 0x80: { // PROTO
        const protocol = u8();
        if (protocol < 2 || protocol > 5) fail(`protocol ${protocol} is not read (2 to 5 are)`, at);
        break;
      }
      case 0x95: // FRAME: only a hint for buffering
        u64('frame length');
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || stack[0] === MARK) fail(`STOP with ${stack.length} items on the stack instead of one value`, at);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        if (stack.length === 0) fail('POP on an empty stack', at);
        stack.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4, 'BININT');
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
      case 0x8b: { // LONG4
        const n = op === 0x8a ? u8() : u32();
        if (n > MAX_LONG_BYTES) fail(`an int of ${n} bytes is larger than the ${MAX_LONG_BYTES} read`, at);
        stack.push(readLong(take(n, 'LONG')));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8, 'BINFLOAT');
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
      case 0x8c: // SHORT_BINUNICODE
      case 0x8d: { // BINUNICODE8
        const n = op === 0x8c ? u8() : op === 0x58 ? u32() : u64('string length');
        const textAt = pos;
        stack.push(utf8(take(n, 'a string'), textAt));
        break;
      }
      case 0x54: // BINSTRING (Python 2 str: bytes, read as Latin-1 text)
      case 0x55: { // SHORT_BINSTRING
        const n = op === 0x55 ? u8() : u32();
        stack.push(latin1(take(n, 'a string')));
        break;
      }
      case 0x42: // BINBYTES
      case 0x43: // SHORT_BINBYTES
      case 0x8e: // BINBYTES8
      case 0x96: { // BYTEARRAY8
        const n = op === 0x43 ? u8() : op === 0x42 ? u32() : u64('bytes length');
        stack.push(take(n, 'bytes').slice());
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: { // APPEND
        const item = pop();
        appendItems(top(), [item]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: { // TUPLE3
        const n = op - 0x84;
        const items: PickleValue[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push(new PyTuple(items));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: { // DICT
        const dict = new Map();
        setItems(dict, popMark());
        stack.push(dict);
        break;
      }
      case 0x73: { // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: { // ADDITEMS
        const items = popMark();
        const set = top();
        if (!(set instanceof Set)) fail(`ADDITEMS on ${describeValue(set)}, not a set`, at);
        for (const item of items) set.add(item);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x63: { // GLOBAL
        const module = line('the module of GLOBAL');
        const name = line('the name of GLOBAL');
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without two strings', at);
        stack.push(global(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const callee = pop();
        stack.push(call(callee, args, 'REDUCE'));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args); the allowed classes build from their arguments
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, 'NEWOBJ'));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        const maker = target !== null && typeof target === 'object' ? madeBy.get(target) : undefined;
        if (!maker?.build) fail(`BUILD (setting the state of an object) on ${describeValue(target)} is not allowed`, at);
        stack[stack.length - 1] = maker!.build!(target, state);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('a persistent id, which this kind of file does not use', at);
        stack.push(options.persistentLoad!(pid));
        break;
      }
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')}${OPCODE_NAMES[op] ? ` (${OPCODE_NAMES[op]})` : ''} is not read`, at);
    }
  }
}

/** Opcodes refused on purpose, named in the message. */
const OPCODE_NAMES: Record<number, string> = {
  0x69: 'INST, which instantiates a class',
  0x6f: 'OBJ, which instantiates a class',
  0x92: 'NEWOBJ_EX, which instantiates a class',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x97: 'NEXT_BUFFER, an out-of-band buffer',
  0x98: 'READONLY_BUFFER',
  0x50: 'PERSID, protocol 0',
  0x49: 'INT, protocol 0',
  0x4c: 'LONG, protocol 0',
  0x46: 'FLOAT, protocol 0',
  0x53: 'STRING, protocol 0',
  0x56: 'UNICODE, protocol 0',
  0x67: 'GET, protocol 0',
  0x70: 'PUT, protocol 0',
};

export function isGlobal(value: PickleValue): value is PickleGlobal {
  return value !== null && typeof value === 'object' && typeof value.qualname === 'string' && !(value instanceof PyTuple);
}

/** Little-endian two's complement, as a number when it is exact, else a bigint. */
function readLong(raw: Uint8Array): number | bigint {
  if (raw.length === 0) return 0;
  let value = 0n;
  for (let i = raw.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(raw[i]);
  if (raw[raw.length - 1] & 0x80) value -= 1n << BigInt(8 * raw.length);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** Bytes as the characters of the same codes (Latin-1), without spreading a huge array. */
function latin1(raw: Uint8Array): string {
  let text = '';
  for (let i = 0; i < raw.length; i += 8192) text += String.fromCharCode(...raw.subarray(i, i + 8192));
  return text;
}

export function describeValue(value: PickleValue): string {
  if (value === null) return 'None';
  if (isGlobal(value)) return `'${value.qualname}'`;
  if (value instanceof PyTuple) return `a tuple of ${value.items.length}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Map) return `a dict of ${value.size}`;
  if (value instanceof Set) return 'a set';
  if (value instanceof Uint8Array) return `bytes of length ${value.length}`;
  if (typeof value === 'string') return `the string '${printable(value.length > 40 ? `${value.slice(0, 37)}...` : value)}'`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Text safe to print: control characters escaped, cut short. */
export function printable(text: string): string {
  const cut = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  // deno-lint-ignore no-control-regex
  return cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
