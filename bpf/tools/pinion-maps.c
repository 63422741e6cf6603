// SPDX-License-Identifier: Apache-2.0
/*
 * pinion-maps: bulk reads and writes of pinned BPF maps in binary records,
 * through bpf(2) directly (no libbpf, statically linked so it runs on any
 * node of the same architecture). The TypeScript side encodes and decodes the
 * records with the struct codecs; bpftool stays for loading and attaching.
 *
 *   pinion-maps info PATH...   one JSON line per map: type, key, value, stride, max, flags, cpus
 *   pinion-maps dump PATH      header + key|value records on stdout (BPF_MAP_LOOKUP_BATCH,
 *                              or key iteration where the kernel has no batch for the type)
 *   pinion-maps digest PATH... one JSON line per map: entry count and an order-independent hash
 *   pinion-maps apply          framed updates/deletes of one or more maps from stdin
 *   pinion-maps create PATH TYPE KEY VALUE MAX FLAGS NAME   create and pin an empty map
 *
 * Dump header (little-endian u32 words): "PMD1", key size, value size, value
 * stride (per-CPU maps: round_up(value, 8) * cpus), cpus. On success stderr's last
 * line is "dumped N entries via batch|iteration": the reader checks N.
 *
 * Apply frames: u8 op ('U' update, 'D' delete), u8 0, u16 path length,
 * u32 count, the path, then count records (key + value stride, or key).
 *
 * Errors name the map and, where one is to blame, the failing key; exit 1.
 * Usage errors exit 2. PINION_MAPS_NO_BATCH=1 takes the one-by-one paths that
 * kernels without batch operations for a map type need (tests use it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef ENOTSUPP
#define ENOTSUPP 524
#endif

#define BATCH 4096

static const char *map_label = "";

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "pinion-maps: %s: ", map_label);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

struct map {
	int fd;
	struct bpf_map_info info;
	uint32_t cpus;
	uint32_t stride; /* value bytes per record */
	int percpu;
};

static uint32_t possible_cpus(void)
{
	/* The kernel sizes per-CPU values by possible CPUs: "0-3" or "0,2-5". */
	FILE *file = fopen("/sys/devices/system/cpu/possible", "r");
	unsigned int last = 0, a, b;
	char sep;
	if (!file)
		die("cannot read /sys/devices/system/cpu/possible: %s", strerror(errno));
	while (fscanf(file, "%u", &a) == 1) {
		b = a;
		if (fscanf(file, "%c", &sep) == 1 && sep == '-') {
			if (fscanf(file, "%u", &b) != 1)
				break;
			if (fscanf(file, "%c", &sep) != 1)
				sep = 0;
		}
		if (b > last)
			last = b;
		if (sep != ',')
			break;
	}
	fclose(file);
	return last + 1;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static void open_map(const char *path, struct map *map)
{
	union bpf_attr attr;
	map_label = base_name(path);
	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uint64_t)(uintptr_t)path;
	map->fd = sys_bpf(BPF_OBJ_GET, &attr);
	if (map->fd < 0)
		die("cannot open pinned map %s: %s", path, strerror(errno));
	memset(&map->info, 0, sizeof(map->info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = map->fd;
	attr.info.info_len = sizeof(map->info);
	attr.info.info = (uint64_t)(uintptr_t)&map->info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0)
		die("cannot read map info: %s", strerror(errno));
	uint32_t type = map->info.type;
	map->percpu = type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
	map->cpus = map->percpu ? possible_cpus() : 1;
	map->stride = map->percpu ? ((map->info.value_size + 7) & ~7u) * map->cpus : map->info.value_size;
}

static void *alloc(size_t size)
{
	void *memory = calloc(1, size ? size : 1);
	if (!memory)
		die("out of memory (%zu bytes)", size);
	return memory;
}

static void hex_key(const uint8_t *key, uint32_t size, char *out)
{
	for (uint32_t i = 0; i < size && i < 64; i++)
		sprintf(out + 2 * i, "%02x", key[i]);
}

static void die_key(const char *what, const uint8_t *key, uint32_t size, int error, uint32_t max)
{
	char hex[160] = "";
	hex_key(key, size, hex);
	if (error == E2BIG || error == ENOSPC)
		die("%s key %s: %s (the map holds at most %u entries)", what, hex, strerror(error), max);
	die("%s key %s: %s", what, hex, strerror(error));
}

/* Map types without batch operations (LPM tries before Linux 6.x) answer these. */
static int no_batch(int error)
{
	return error == EINVAL || error == ENOTSUPP || error == EOPNOTSUPP;
}

static int batch_disabled(void)
{
	const char *value = getenv("PINION_MAPS_NO_BATCH");
	return value && *value && strcmp(value, "0");
}

/* ---- dump ---------------------------------------------------------------- */

/* Keys already written during an iteration: get_next_key restarts from the
 * first key when the current one was deleted meanwhile, so skip repeats. */
struct key_set {
	uint8_t *keys;
	uint8_t *used;
	size_t slots, count;
	uint32_t size;
};

static uint64_t key_hash(const uint8_t *key, uint32_t size)
{
	uint64_t hash = 1469598103934665603ull;
	for (uint32_t i = 0; i < size; i++)
		hash = (hash ^ key[i]) * 1099511628211ull;
	return hash;
}

static void set_init(struct key_set *set, uint32_t size, size_t slots)
{
	set->size = size;
	set->slots = slots;
	set->count = 0;
	set->keys = alloc(slots * size);
	set->used = alloc(slots);
}

static int set_insert(struct key_set *set, const uint8_t *key);

static void set_grow(struct key_set *set)
{
	struct key_set bigger;
	set_init(&bigger, set->size, set->slots * 2);
	for (size_t i = 0; i < set->slots; i++)
		if (set->used[i])
			set_insert(&bigger, set->keys + i * set->size);
	free(set->keys);
	free(set->used);
	*set = bigger;
}

/* Returns 1 when the key was new. */
static int set_insert(struct key_set *set, const uint8_t *key)
{
	if ((set->count + 1) * 2 > set->slots)
		set_grow(set);
	size_t slot = key_hash(key, set->size) & (set->slots - 1);
	while (set->used[slot]) {
		if (!memcmp(set->keys + slot * set->size, key, set->size))
			return 0;
		slot = (slot + 1) & (set->slots - 1);
	}
	set->used[slot] = 1;
	memcpy(set->keys + slot * set->size, key, set->size);
	set->count++;
	return 1;
}

typedef void (*entry_fn)(const uint8_t *key, const uint8_t *value, const struct map *map, void *state);

/* Every entry once, batch first; returns the method used. */
static const char *for_each_entry(struct map *map, entry_fn fn, void *state, uint64_t *count)
{
	uint32_t ksize = map->info.key_size, stride = map->stride;
	uint32_t capacity = BATCH;
	uint8_t *keys = alloc((size_t)capacity * ksize), *values = alloc((size_t)capacity * stride);
	/* The batch token is a bucket index for hash maps and a key for arrays. */
	uint8_t *token_in = alloc(ksize < 8 ? 8 : ksize), *token_out = alloc(ksize < 8 ? 8 : ksize);
	int first = 1;
	*count = 0;
	while (!batch_disabled()) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.batch.map_fd = map->fd;
		attr.batch.in_batch = first ? 0 : (uint64_t)(uintptr_t)token_in;
		attr.batch.out_batch = (uint64_t)(uintptr_t)token_out;
		attr.batch.keys = (uint64_t)(uintptr_t)keys;
		attr.batch.values = (uint64_t)(uintptr_t)values;
		attr.batch.count = capacity;
		int rc = sys_bpf(BPF_MAP_LOOKUP_BATCH, &attr);
		int error = rc < 0 ? errno : 0;
		if (error && error != ENOENT) {
			if (first && no_batch(error))
				break; /* this map type has no batch lookup: iterate */
			if (error == ENOSPC && capacity < (1u << 24)) {
				/* one hash bucket holds more entries than fit: retry bigger */
				capacity *= 2;
				free(keys);
				free(values);
				keys = alloc((size_t)capacity * ksize);
				values = alloc((size_t)capacity * stride);
				continue;
			}
			die("batch lookup: %s", strerror(error));
		}
		for (uint32_t i = 0; i < attr.batch.count; i++)
			fn(keys + (size_t)i * ksize, values + (size_t)i * stride, map, state);
		*count += attr.batch.count;
		if (error == ENOENT)
			goto done_batch;
		memcpy(token_in, token_out, ksize < 8 ? 8 : ksize);
		first = 0;
	}
	/* Iteration: BPF_MAP_GET_NEXT_KEY, then a lookup of each key. */
	{
		uint8_t *key = alloc(ksize), *next = alloc(ksize), *value = alloc(stride);
		struct key_set seen;
		set_init(&seen, ksize, 1024);
		int have = 0;
		for (;;) {
			union bpf_attr attr;
			memset(&attr, 0, sizeof(attr));
			attr.map_fd = map->fd;
			attr.key = have ? (uint64_t)(uintptr_t)key : 0;
			attr.next_key = (uint64_t)(uintptr_t)next;
			if (sys_bpf(BPF_MAP_GET_NEXT_KEY, &attr) < 0) {
				if (errno == ENOENT)
					break;
				die("next key: %s", strerror(errno));
			}
			memcpy(key, next, ksize);
			have = 1;
			memset(&attr, 0, sizeof(attr));
			attr.map_fd = map->fd;
			attr.key = (uint64_t)(uintptr_t)key;
			attr.value = (uint64_t)(uintptr_t)value;
			if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0) {
				if (errno == ENOENT)
					continue; /* deleted since get_next_key: not part of the map any more */
				die_key("lookup", key, ksize, errno, map->info.max_entries);
			}
			if (!set_insert(&seen, key))
				continue;
			fn(key, value, map, state);
			(*count)++;
		}
		free(key);
		free(next);
		free(value);
		free(seen.keys);
		free(seen.used);
		free(keys);
		free(values);
		free(token_in);
		free(token_out);
		return "iteration";
	}
done_batch:
	free(keys);
	free(values);
	free(token_in);
	free(token_out);
	return "batch";
}

static void write_all(const void *data, size_t size)
{
	if (size && fwrite(data, 1, size, stdout) != size)
		die("write: %s", strerror(errno));
}

static void emit_record(const uint8_t *key, const uint8_t *value, const struct map *map, void *state)
{
	(void)state;
	write_all(key, map->info.key_size);
	write_all(value, map->stride);
}

static int cmd_dump(const char *path)
{
	struct map map;
	uint64_t count;
	static char out_buffer[1 << 20];
	open_map(path, &map);
	setvbuf(stdout, out_buffer, _IOFBF, sizeof(out_buffer));
	uint32_t header[5] = {0x31444d50 /* "PMD1" */, map.info.key_size, map.info.value_size, map.stride, map.cpus};
	write_all(header, sizeof(header));
	const char *method = for_each_entry(&map, emit_record, NULL, &count);
	if (fflush(stdout) != 0)
		die("write: %s", strerror(errno));
	/* each entry is copied whole by the kernel; entries may change between them */
	fprintf(stderr, "dumped %llu entries via %s (each entry consistent; not a snapshot of the whole map)\n", (unsigned long long)count, method);
	return 0;
}

/* ---- digest --------------------------------------------------------------- */

/* Two 32-bit hashes of key|value, summed over entries (order-independent);
 * src/datapath/maptool.ts computes the same for the entries it wants. */
struct digest {
	uint32_t sum_a, sum_b;
};

static void digest_entry(const uint8_t *key, const uint8_t *value, const struct map *map, void *state)
{
	struct digest *digest = state;
	uint32_t a = 2166136261u, b = 5381u;
	for (uint32_t i = 0; i < map->info.key_size + map->stride; i++) {
		uint8_t byte = i < map->info.key_size ? key[i] : value[i - map->info.key_size];
		a = (a ^ byte) * 16777619u;
		b = (b * 33u) ^ byte;
	}
	digest->sum_a += a;
	digest->sum_b += b;
}

static int cmd_digest(const char *path)
{
	struct map map;
	struct digest digest = {0, 0};
	uint64_t count;
	open_map(path, &map);
	const char *method = for_each_entry(&map, digest_entry, &digest, &count);
	printf("{\"count\":%llu,\"a\":%u,\"b\":%u,\"method\":\"%s\"}\n", (unsigned long long)count, digest.sum_a, digest.sum_b, method);
	close(map.fd);
	return 0;
}

/* ---- info ----------------------------------------------------------------- */

static int cmd_info(const char *path)
{
	struct map map;
	open_map(path, &map);
	printf("{\"name\":\"%s\",\"type\":%u,\"key\":%u,\"value\":%u,\"stride\":%u,\"max\":%u,\"flags\":%u,\"cpus\":%u}\n", map.info.name, map.info.type,
	       map.info.key_size, map.info.value_size, map.stride, map.info.max_entries, map.info.map_flags, map.cpus);
	close(map.fd);
	return 0;
}

/* ---- apply ---------------------------------------------------------------- */

/* Returns 1 when all `size` bytes were read, 0 at a clean end of input, -1 when it ends inside. */
static int read_exact(void *buffer, size_t size)
{
	size_t got = fread(buffer, 1, size, stdin);
	if (got == size)
		return 1;
	if (ferror(stdin))
		die("read: %s", strerror(errno));
	return got == 0 ? 0 : -1;
}

static void update_one(struct map *map, const uint8_t *key, const uint8_t *value)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = map->fd;
	attr.key = (uint64_t)(uintptr_t)key;
	attr.value = (uint64_t)(uintptr_t)value;
	attr.flags = BPF_ANY;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0)
		die_key("update", key, map->info.key_size, errno, map->info.max_entries);
}

/* A key that is already gone is not an error: deleting is idempotent. */
static void delete_one(struct map *map, const uint8_t *key)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = map->fd;
	attr.key = (uint64_t)(uintptr_t)key;
	if (sys_bpf(BPF_MAP_DELETE_ELEM, &attr) < 0 && errno != ENOENT)
		die_key("delete", key, map->info.key_size, errno, map->info.max_entries);
}

/*
 * Updates (values given) or deletes (values NULL) in batches; after a failed
 * batch the rest goes one by one from the first entry not reported done, so
 * the error names the key to blame (redoing an update or delete is harmless).
 */
static void apply_records(struct map *map, uint8_t *keys, uint8_t *values, uint32_t count)
{
	uint32_t ksize = map->info.key_size, done = 0;
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.batch.map_fd = map->fd;
	attr.batch.keys = (uint64_t)(uintptr_t)keys;
	attr.batch.values = (uint64_t)(uintptr_t)values;
	attr.batch.count = count;
	attr.batch.elem_flags = values ? BPF_ANY : 0;
	if (count == 0 || (!batch_disabled() && sys_bpf(values ? BPF_MAP_UPDATE_BATCH : BPF_MAP_DELETE_BATCH, &attr) == 0))
		return;
	/* a kernel that did not get as far as an element leaves count as given */
	done = attr.batch.count < count ? attr.batch.count : 0;
	for (; done < count; done++) {
		if (values)
			update_one(map, keys + (size_t)done * ksize, values + (size_t)done * map->stride);
		else
			delete_one(map, keys + (size_t)done * ksize);
	}
}

static int cmd_apply(void)
{
	static char in_buffer[1 << 20];
	uint64_t updated = 0, deleted = 0;
	setvbuf(stdin, in_buffer, _IOFBF, sizeof(in_buffer));
	for (;;) {
		uint8_t frame[8];
		int got = read_exact(frame, sizeof(frame));
		if (got == 0)
			break;
		if (got < 0)
			die("truncated frame header on stdin");
		uint8_t op = frame[0];
		uint16_t path_len;
		uint32_t count;
		memcpy(&path_len, frame + 2, 2);
		memcpy(&count, frame + 4, 4);
		if ((op != 'U' && op != 'D') || path_len == 0 || path_len > 4095)
			die("bad frame on stdin (op %u, path length %u)", op, path_len);
		char path[4096];
		if (read_exact(path, path_len) != 1)
			die("truncated path on stdin");
		path[path_len] = 0;
		struct map map;
		open_map(path, &map);
		size_t ksize = map.info.key_size, vsize = op == 'U' ? map.stride : 0;
		uint8_t *keys = alloc(count * ksize), *values = alloc(count * vsize);
		/* records interleave key and value; batch calls want them apart */
		uint8_t *records = alloc(count * (ksize + vsize));
		if (count && read_exact(records, count * (ksize + vsize)) != 1)
			die("truncated records on stdin (%u expected)", count);
		for (uint32_t i = 0; i < count; i++) {
			memcpy(keys + i * ksize, records + i * (ksize + vsize), ksize);
			memcpy(values + i * vsize, records + i * (ksize + vsize) + ksize, vsize);
		}
		free(records);
		apply_records(&map, keys, op == 'U' ? values : NULL, count);
		if (op == 'U')
			updated += count;
		else
			deleted += count;
		free(keys);
		free(values);
		close(map.fd);
	}
	fprintf(stderr, "updated %llu, deleted %llu\n", (unsigned long long)updated, (unsigned long long)deleted);
	return 0;
}

/* ---- create --------------------------------------------------------------- */

static uint32_t number(const char *text, const char *what)
{
	char *end;
	unsigned long value = strtoul(text, &end, 10);
	if (!*text || *end || value > UINT32_MAX) {
		fprintf(stderr, "pinion-maps: %s must be a number, got \"%s\"\n", what, text);
		exit(2);
	}
	return (uint32_t)value;
}

static int cmd_create(char **argv)
{
	union bpf_attr attr;
	map_label = base_name(argv[0]);
	memset(&attr, 0, sizeof(attr));
	attr.map_type = number(argv[1], "TYPE");
	attr.key_size = number(argv[2], "KEY");
	attr.value_size = number(argv[3], "VALUE");
	attr.max_entries = number(argv[4], "MAX");
	attr.map_flags = number(argv[5], "FLAGS");
	strncpy(attr.map_name, argv[6], sizeof(attr.map_name) - 1);
	int fd = sys_bpf(BPF_MAP_CREATE, &attr);
	if (fd < 0)
		die("cannot create map (type %u, key %u, value %u, max %u, flags %u): %s", attr.map_type, attr.key_size, attr.value_size, attr.max_entries,
		    attr.map_flags, strerror(errno));
	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uint64_t)(uintptr_t)argv[0];
	attr.bpf_fd = fd;
	if (sys_bpf(BPF_OBJ_PIN, &attr) < 0)
		die("cannot pin at %s: %s", argv[0], strerror(errno));
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: pinion-maps dump PATH | info|digest PATH... | apply | create PATH TYPE KEY VALUE MAX FLAGS NAME\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "info")) {
		for (int i = 2; i < argc; i++)
			cmd_info(argv[i]);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "dump"))
		return cmd_dump(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "digest")) {
		for (int i = 2; i < argc; i++)
			cmd_digest(argv[i]);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "apply"))
		return cmd_apply();
	if (argc == 9 && !strcmp(argv[1], "create"))
		return cmd_create(argv + 2);
	return usage();
}
