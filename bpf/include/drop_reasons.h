/* Drop reasons: the single definition. src/datapath/drop-reasons.ts mirrors this
 * list and test/datapath/abi.test.ts parses this file to prove they agree.
 * Reason 0 is not a drop: metrics count forwarded packets under it. */
#pragma once

#define PINION_DROP_REASONS(X)                                   \
	X(0, FORWARDED, "forwarded")                                  \
	X(1, POLICY_DENIED, "policy denied")                          \
	X(2, NO_SERVICE_BACKEND, "service has no backends")           \
	X(3, MALFORMED_PACKET, "malformed or truncated packet")       \
	X(4, SPOOFED_SOURCE, "source address not owned by endpoint")  \
	X(5, CT_CREATE_FAILED, "conntrack entry could not be created") \
	X(6, CSUM_ERROR, "checksum update failed")                    \
	X(7, SCTP_PORT_XLATE, "SCTP port translation unsupported")    \
	X(8, FRAGMENT_UNSUPPORTED, "non-first IP fragment")           \
	X(9, BACKEND_MISSING, "service slot points at no backend")    \
	X(10, UNKNOWN_ENDPOINT, "interface has no endpoint")          \
	X(11, NOT_IPV4, "passed: not IPv4")

#define PINION_DROP_ENUM(num, name, text) DROP_##name = num,
enum pinion_drop_reason { PINION_DROP_REASONS(PINION_DROP_ENUM) };
#undef PINION_DROP_ENUM
