import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, codeOf, describe, errorOf, test } from "../../test/shim.ts";
import { cidrContains, cidrsOfRange, familyBits, formatIp, ipFromBytes, ipToBytes, parseCidr, parseIp, tryParseIp } from "./address.ts";
import type { Cidr } from "./address.ts";
import { PolicyError } from "./errors.ts";

describe("parseIp", () => {
  const accepted: [string, 4 | 6, string][] = [
    ["0.0.0.0", 4, "0.0.0.0"],
    ["127.0.0.1", 4, "127.0.0.1"],
    ["255.255.255.255", 4, "255.255.255.255"],
    ["10.20.0.100", 4, "10.20.0.100"],
    // RFC 5952 section 4: leading zeros, compression, lowercase.
    ["2001:db8:0:0:0:0:2:1", 6, "2001:db8::2:1"],
    ["2001:0db8::0001", 6, "2001:db8::1"],
    ["2001:db8::0:1", 6, "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", 6, "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", 6, "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", 6, "2001:0:0:1::1"],
    ["2001:DB8::AAAA", 6, "2001:db8::aaaa"],
    ["2001:db8::1:0:0:0", 6, "2001:db8:0:0:1::"],
    ["::", 6, "::"],
    ["0:0:0:0:0:0:0:0", 6, "::"],
    ["::1", 6, "::1"],
    ["1::", 6, "1::"],
    ["1:2:3:4:5:6:7::", 6, "1:2:3:4:5:6:7:0"],
    ["::2:3:4:5:6:7:8", 6, "0:2:3:4:5:6:7:8"],
    ["1:2:3:4:5:6:7:8", 6, "1:2:3:4:5:6:7:8"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ["fe80::1", 6, "fe80::1"],
    // Embedded IPv4 (RFC 4291 section 2.2 form 3); canonical text is always hex.
    ["::1.2.3.4", 6, "::102:304"],
    ["64:ff9b::192.0.2.33", 6, "64:ff9b::c000:221"],
    ["1:2:3:4:5:6:1.2.3.4", 6, "1:2:3:4:5:6:102:304"],
    ["::ffff:0:1.2.3.4", 6, "::ffff:0:102:304"],
    ["::fffe:1.2.3.4", 6, "::fffe:102:304"],
    ["1::ffff:1.2.3.4", 6, "1::ffff:102:304"],
    // IPv4-mapped (RFC 4291 section 2.5.5.2) is the IPv4 address.
    ["::ffff:192.0.2.1", 4, "192.0.2.1"],
    ["::FFFF:c000:0201", 4, "192.0.2.1"],
    ["0:0:0:0:0:ffff:1.2.3.4", 4, "1.2.3.4"],
    ["::ffff:0.0.0.0", 4, "0.0.0.0"],
  ];
  for (const [text, family, canonical] of accepted) {
    test(`accepts ${text} as IPv${family} ${canonical}`, () => {
      const a = parseIp(text);
      assert.equal(a.family, family);
      assert.equal(a.text, canonical);
      assert.ok(Object.isFrozen(a));
      assert.equal(parseIp(canonical).value, a.value);
      assert.equal(parseIp(canonical).text, canonical);
    });
  }

  test("values are the unsigned integers", () => {
    assert.equal(parseIp("1.2.3.4").value, 0x01020304n);
    assert.equal(parseIp("255.255.255.255").value, 0xffffffffn);
    assert.equal(parseIp("2001:db8::1").value, 0x20010db8000000000000000000000001n);
    assert.equal(parseIp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").value, (1n << 128n) - 1n);
  });

  const rejected: [string, string][] = [
    ["", "empty"],
    ["1.2.3", "three parts"],
    ["1.2.3.4.5", "five parts"],
    ["010.0.0.1", "a leading zero (octal elsewhere)"],
    ["1.2.3.00", "a zero written twice"],
    ["256.0.0.1", "a part above 255"],
    ["1.2.3.1000", "four digits"],
    ["0x7f.0.0.1", "hex"],
    ["2130706433", "one number"],
    ["1.2.3.4 ", "a trailing space"],
    [" 1.2.3.4", "a leading space"],
    ["1.2.3.-4", "a sign"],
    ["1..2.3", "an empty part"],
    ["1.2.3.4.", "a trailing dot"],
    [":", "a single colon"],
    [":::", "three colons"],
    ["1:2:3:4:5:6:7", "seven groups without ::"],
    ["1:2:3:4:5:6:7:8:9", "nine groups"],
    ["1:2:3:4:5:6:7:8::", ":: with eight groups"],
    ["::1:2:3:4:5:6:7:8", ":: before eight groups"],
    ["1::2::3", "two ::"],
    ["1:::2", ":::"],
    [":1::", "a leading single colon"],
    ["1::2:", "a trailing single colon"],
    ["12345::", "five hex digits"],
    ["g::", "a non-hex digit"],
    ["[::1]", "brackets"],
    ["fe80::1%eth0", "a zone id"],
    ["fe80::1%1", "a numeric zone id"],
    ["1.2.3.4::", "an IPv4 part before ::"],
    ["1.2.3.4::1", "an IPv4 part in the middle"],
    ["::1.2.3", "a short embedded IPv4"],
    ["::1.2.3.04", "an embedded IPv4 with a leading zero"],
    ["::ffff:1.2.3.4:1", "an embedded IPv4 not last"],
    ["1:2:3:4:5:6:7:1.2.3.4", "an embedded IPv4 after seven groups"],
    ["0000:0000:0000:0000:0000:ffff:255.255.255.2550", "too long"],
    ["::１", "a fullwidth digit"],
    ["１.2.3.4", "a fullwidth digit in IPv4"],
  ];
  for (const [text, why] of rejected) {
    test(`rejects ${JSON.stringify(text)} (${why})`, () => {
      assert.equal(codeOf(() => parseIp(text)), "policy_bad_address");
    });
  }

  test("messages name the input and the reason", () => {
    assert.match(errorOf(() => parseIp("fe80::1%eth0"), PolicyError).message, /^policy: "fe80::1%eth0" .*zone ids/);
    assert.match(errorOf(() => parseIp("[::1]"), PolicyError).message, /brackets/);
  });

  test("tryParseIp gives the same address, or null where parseIp throws", () => {
    assert.deepEqual(tryParseIp("::ffff:1.2.3.4"), parseIp("1.2.3.4"));
    assert.deepEqual(tryParseIp("2001:DB8::1"), parseIp("2001:db8::1"));
    for (const [text] of rejected) assert.equal(tryParseIp(text), null, text);
  });

  test("byte loop: the last IPv4 part takes only the decimal digits", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const ok = b >= 48 && b <= 57;
      assert.equal(codeOf(() => parseIp(`1.2.3.${ch}`)), ok ? null : "policy_bad_address", `byte ${b}`);
    }
  });

  test("byte loop: an IPv6 group takes only the hex digits, either case", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const ok = /^[0-9a-fA-F]$/.test(ch);
      assert.equal(codeOf(() => parseIp(`2001:db8::${ch}`)), ok ? null : "policy_bad_address", `byte ${b}`);
    }
  });
});

describe("ipFromBytes and ipToBytes", () => {
  test("4 and 16 bytes in network order", () => {
    assert.equal(ipFromBytes(new Uint8Array([10, 0, 0, 255])).text, "10.0.0.255");
    assert.equal(ipFromBytes(new Uint8Array([255, 255, 255, 255])).value, 0xffffffffn);
    const six = ipFromBytes(new Uint8Array([0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1]));
    assert.equal(six.family, 6);
    assert.equal(six.text, "2001:db8::1");
    assert.deepEqual([...ipToBytes(six)], [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1]);
    assert.deepEqual([...ipToBytes(parseIp("192.0.2.1"))], [192, 0, 2, 1]);
  });

  test("16 bytes of an IPv4-mapped address are the IPv4 address", () => {
    const a = ipFromBytes(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]));
    assert.equal(a.family, 4);
    assert.equal(a.text, "192.0.2.1");
    assert.deepEqual([...ipToBytes(a)], [192, 0, 2, 1]);
  });

  for (const n of [0, 1, 3, 5, 8, 15, 17, 32]) {
    test(`rejects ${n} bytes`, () => {
      assert.equal(codeOf(() => ipFromBytes(new Uint8Array(n))), "policy_bad_address");
    });
  }

  test("property: bytes -> address -> bytes -> address round trips, and agrees with parseIp", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), (bytes) => {
        const a = ipFromBytes(bytes);
        const b = ipFromBytes(ipToBytes(a));
        assert.deepEqual(b, a);
        assert.deepEqual(parseIp(a.text), a);
        assert.equal(formatIp(a.family, a.value), a.text);
      }),
      { numRuns: fuzzRuns(500) },
    );
  });
});

describe("parseCidr", () => {
  const accepted: [string, string, bigint, bigint][] = [
    ["10.0.0.0/8", "10.0.0.0/8", 0x0a000000n, 0x0affffffn],
    ["0.0.0.0/0", "0.0.0.0/0", 0n, 0xffffffffn],
    ["192.0.2.1", "192.0.2.1/32", 0xc0000201n, 0xc0000201n],
    ["192.0.2.1/32", "192.0.2.1/32", 0xc0000201n, 0xc0000201n],
    ["2001:db8::/32", "2001:db8::/32", 0x20010db8n << 96n, (0x20010db8n << 96n) | ((1n << 96n) - 1n)],
    ["2001:0DB8:0000::/48", "2001:db8::/48", 0x20010db8n << 96n, (0x20010db8n << 96n) | ((1n << 80n) - 1n)],
    ["::/0", "::/0", 0n, (1n << 128n) - 1n],
    ["::1", "::1/128", 1n, 1n],
    ["::/96", "::/96", 0n, (1n << 32n) - 1n],
    ["::/80", "::/80", 0n, (1n << 48n) - 1n],
  ];
  for (const [text, canonical, first, last] of accepted) {
    test(`accepts ${text} as ${canonical}`, () => {
      const c = parseCidr(text);
      assert.equal(c.text, canonical);
      assert.equal(c.first, first);
      assert.equal(c.last, last);
      assert.ok(Object.isFrozen(c));
      assert.deepEqual(parseCidr(canonical), c);
    });
  }

  const rejected: [string, string][] = [
    ["", "empty"],
    ["10.0.0.0/", "an empty prefix"],
    ["/8", "no address"],
    ["10.0.0.0/33", "a prefix above 32"],
    ["2001:db8::/129", "a prefix above 128"],
    ["10.0.0.0/08", "a leading zero in the prefix"],
    ["10.0.0.0/+8", "a sign"],
    ["10.0.0.0/-1", "a negative prefix"],
    ["10.0.0.0/8/8", "two slashes"],
    ["10.0.0.0/ 8", "a space"],
    ["10.0.0.0/8.0", "a fractional prefix"],
    ["10.0.0.0/0x8", "a hex prefix"],
    ["10.0.0.1/8", "host bits"],
    ["2001:db8::1/64", "host bits (IPv6)"],
    ["010.0.0.0/8", "a bad address"],
    ["[2001:db8::]/32", "brackets"],
    ["fe80::%eth0/64", "a zone id"],
    ["::ffff:0:0/96", "the IPv4-mapped range"],
    ["::ffff:10.0.0.0/104", "an IPv4-mapped range"],
    ["::ffff:1.2.3.4", "a bare IPv4-mapped address"],
  ];
  for (const [text, why] of rejected) {
    test(`rejects ${JSON.stringify(text)} (${why})`, () => {
      assert.equal(codeOf(() => parseCidr(text)), "policy_bad_cidr");
    });
  }

  test("host bits: the message names the network it probably meant", () => {
    const e = errorOf(() => parseCidr("10.0.0.1/8"), PolicyError);
    assert.equal(e.message, 'policy: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?');
    assert.match(errorOf(() => parseCidr("2001:db8::1/32"), PolicyError).message, /did you mean 2001:db8::\/32\?$/);
  });

  test("an IPv4-mapped range says to write IPv4", () => {
    assert.match(errorOf(() => parseCidr("::ffff:10.0.0.0/104"), PolicyError).message, /write IPv4 ranges as IPv4/);
  });

  test("a bad address or prefix names the input and why", () => {
    assert.match(errorOf(() => parseCidr("10.0.0.0/33"), PolicyError).message, /^policy: "10\.0\.0\.0\/33" .*0\.\.32/);
    assert.match(errorOf(() => parseCidr("1.2.3/8"), PolicyError).message, /^policy: "1\.2\.3\/8" .*a\.b\.c\.d/);
  });
});

describe("cidrContains", () => {
  const table: [string, string, boolean][] = [
    ["10.0.0.0/8", "10.0.0.0", true],
    ["10.0.0.0/8", "10.255.255.255", true],
    ["10.0.0.0/8", "11.0.0.0", false],
    ["10.0.0.0/8", "9.255.255.255", false],
    ["0.0.0.0/0", "255.255.255.255", true],
    ["10.0.0.0/8", "::ffff:10.1.2.3", true],
    ["::/0", "10.0.0.1", false],
    ["::/0", "::ffff:10.0.0.1", false],
    ["0.0.0.0/0", "::1", false],
    ["2001:db8::/32", "2001:db8:ffff::1", true],
    ["2001:db8::/32", "2001:db9::", false],
    ["192.0.2.1", "192.0.2.1", true],
    ["192.0.2.1", "192.0.2.2", false],
  ];
  for (const [cidr, ip, want] of table) {
    test(`${cidr} ${want ? "contains" : "does not contain"} ${ip}`, () => {
      assert.equal(cidrContains(parseCidr(cidr), parseIp(ip)), want);
    });
  }
});

function checkCover(family: 4 | 6, first: bigint, last: bigint, blocks: Cidr[]): void {
  const bits = familyBits(family);
  assert.equal(blocks[0]?.first, first);
  assert.equal(blocks[blocks.length - 1]?.last, last);
  assert.ok(blocks.length <= 2 * bits);
  blocks.forEach((c, i) => {
    const size = 1n << BigInt(bits - c.prefix);
    assert.equal(c.family, family);
    assert.equal(c.first % size, 0n, `${c.text} aligned`);
    assert.equal(c.last, c.first + size - 1n);
    if (i === 0 || i === blocks.length - 1) assert.deepEqual(parseCidr(c.text), c);
    const prev = blocks[i - 1];
    if (prev === undefined) return;
    assert.equal(c.first, prev.last + 1n, "ascending, disjoint, no gap");
    // Minimal: two adjacent sibling blocks of one size would be one block.
    const mergeable = prev.prefix === c.prefix && prev.first % (size * 2n) === 0n;
    assert.ok(!mergeable, `${prev.text} and ${c.text} merge`);
  });
}

describe("cidrsOfRange", () => {
  const table: [4 | 6, string, string, string[]][] = [
    [4, "10.0.0.0", "10.255.255.255", ["10.0.0.0/8"]],
    [4, "0.0.0.1", "0.0.0.10", ["0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30", "0.0.0.8/31", "0.0.0.10/32"]],
    [4, "0.0.0.0", "255.255.255.255", ["0.0.0.0/0"]],
    [4, "255.255.255.255", "255.255.255.255", ["255.255.255.255/32"]],
    [6, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ["::/0"]],
    [6, "2001:db8::", "2001:db8::1:ffff", ["2001:db8::/111"]],
  ];
  for (const [family, a, b, want] of table) {
    test(`[${a}, ${b}] -> ${want.length === 1 ? want[0] : `${want.length} blocks`}`, () => {
      const got = cidrsOfRange(family, parseIp(a).value, parseIp(b).value);
      assert.deepEqual(got.map((c) => c.text), want);
    });
  }

  test("the worst case: all but the last address takes one block per prefix length", () => {
    const got = cidrsOfRange(4, 0n, 0xfffffffen);
    assert.equal(got.length, 32);
    assert.deepEqual(got.slice(0, 2).map((c) => c.text), ["0.0.0.0/1", "128.0.0.0/2"]);
    assert.equal(got[31]?.text, "255.255.255.254/32");
    checkCover(4, 0n, 0xfffffffen, got);
  });

  test("an empty interval gives no blocks", () => {
    assert.deepEqual(cidrsOfRange(4, 5n, 4n), []);
  });

  test("bounds outside the address space are policy_bad_cidr", () => {
    assert.equal(codeOf(() => cidrsOfRange(4, 0n, 1n << 32n)), "policy_bad_cidr");
    assert.equal(codeOf(() => cidrsOfRange(4, -1n, 3n)), "policy_bad_cidr");
    assert.equal(codeOf(() => cidrsOfRange(6, 0n, 1n << 128n)), "policy_bad_cidr");
  });

  for (const family of [4, 6] as const) {
    test(`property (IPv${family}): ascending, disjoint, aligned, minimal, union exactly [first, last]`, () => {
      const bits = familyBits(family);
      const max = (1n << BigInt(bits)) - 1n;
      // Bounds near aligned boundaries hit the interesting cases more often than uniform ones.
      const bound = fc.oneof(
        fc.bigInt({ min: 0n, max }),
        fc.tuple(fc.integer({ min: 0, max: bits }), fc.integer({ min: -2, max: 2 }), fc.bigInt({ min: 0n, max })).map(([k, d, r]) => {
          const v = ((r >> BigInt(k)) << BigInt(k)) + BigInt(d);
          return v < 0n ? 0n : v > max ? max : v;
        }),
      );
      fc.assert(
        fc.property(bound, bound, (x, y) => {
          const [first, last] = x <= y ? [x, y] : [y, x];
          checkCover(family, first, last, cidrsOfRange(family, first, last));
        }),
        { numRuns: fuzzRuns(400) },
      );
    });
  }
});

test("familyBits", () => {
  assert.equal(familyBits(4), 32);
  assert.equal(familyBits(6), 128);
});
