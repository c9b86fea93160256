/* sqlite: a real library's allocation pattern. SQLite (Debian's
 * libsqlite3, linked) on an in-memory database, one thread: rounds of
 * 40 000 rows inserted into an indexed table in transactions (random
 * 8-64 byte names, 16-400 byte blobs), aggregate and range queries over
 * them, updates that grow and shrink rows, and deletes of half the table,
 * then the table dropped. SQLite allocates its page cache, parse trees,
 * prepared-statement state and result strings through malloc: many sizes
 * at once, some long-lived, most short. */
#include <sqlite3.h>

#include "common.h"

static sqlite3 *db;

static void exec(const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

static sqlite3_stmt *prepare(const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: prepare %s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    return st;
}

static void step_done(sqlite3_stmt *st) {
    if (sqlite3_step(st) != SQLITE_DONE) {
        fprintf(stderr, "sqlite: step: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    sqlite3_reset(st);
}

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long rounds = scaled(4, scale);
    const long rows = 40000;
    uint64_t rng = 0x5eed0006;
    uint64_t h = 0;
    double t0 = now_secs();
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "sqlite: cannot open an in-memory database\n");
        return 1;
    }
    char name[80];
    unsigned char blob[400];
    for (long r = 0; r < rounds; r++) {
        exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, data BLOB)");
        exec("CREATE INDEX t_name ON t(name)");
        sqlite3_stmt *ins = prepare("INSERT INTO t (name, grp, data) VALUES (?1, ?2, ?3)");
        for (long i = 0; i < rows; i++) {
            if (i % 1000 == 0) exec("BEGIN");
            size_t n = (size_t)rng_range(&rng, 8, 64);
            for (size_t k = 0; k < n; k++) name[k] = (char)('a' + rng_next(&rng) % 26);
            size_t b = (size_t)rng_range(&rng, 16, 400);
            memset(blob, (int)(i & 0xff), b);
            sqlite3_bind_text(ins, 1, name, (int)n, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 2, (sqlite3_int64)(rng_next(&rng) % 97));
            sqlite3_bind_blob(ins, 3, blob, (int)b, SQLITE_TRANSIENT);
            step_done(ins);
            if (i % 1000 == 999) exec("COMMIT");
        }
        sqlite3_finalize(ins);

        sqlite3_stmt *q = prepare(
            "SELECT grp, count(*), sum(length(data)), max(name) FROM t GROUP BY grp ORDER BY grp");
        while (sqlite3_step(q) == SQLITE_ROW) {
            h = mix(h, (uint64_t)sqlite3_column_int64(q, 1));
            h = mix(h, (uint64_t)sqlite3_column_int64(q, 2));
            const unsigned char *m = sqlite3_column_text(q, 3);
            h = mix(h, m ? m[0] : 0);
        }
        sqlite3_finalize(q);

        sqlite3_stmt *range = prepare("SELECT count(*), sum(grp) FROM t WHERE name >= ?1 AND name < ?2");
        for (int k = 0; k < 2000; k++) {
            char lo[3] = {(char)('a' + rng_next(&rng) % 26), (char)('a' + rng_next(&rng) % 26), 0};
            char hi[3] = {lo[0], (char)(lo[1] + 1), 0};
            sqlite3_bind_text(range, 1, lo, 2, SQLITE_TRANSIENT);
            sqlite3_bind_text(range, 2, hi, 2, SQLITE_TRANSIENT);
            if (sqlite3_step(range) == SQLITE_ROW) {
                h = mix(h, (uint64_t)sqlite3_column_int64(range, 0));
                h = mix(h, (uint64_t)sqlite3_column_int64(range, 1));
            }
            sqlite3_reset(range);
        }
        sqlite3_finalize(range);

        exec("BEGIN");
        exec("UPDATE t SET data = data || data WHERE grp % 3 = 0");
        exec("UPDATE t SET name = substr(name, 1, 8), data = substr(data, 1, 20) WHERE grp % 5 = 1");
        exec("DELETE FROM t WHERE id % 2 = 0");
        exec("COMMIT");

        sqlite3_stmt *c = prepare("SELECT count(*), sum(length(data)), sum(length(name)) FROM t");
        if (sqlite3_step(c) == SQLITE_ROW) {
            for (int col = 0; col < 3; col++) h = mix(h, (uint64_t)sqlite3_column_int64(c, col));
        }
        sqlite3_finalize(c);
        exec("DROP TABLE t");
    }
    sqlite3_close(db);
    report("sqlite", scale, h, now_secs() - t0);
    return 0;
}
