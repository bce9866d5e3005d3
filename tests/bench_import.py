#!/usr/bin/env python3
"""A big lead import through the real binary, beside a raw insert of the same rows.

    python3 tests/bench_import.py --rows 1000000 --closeloop target/release/closeloop

Writes a CSV of N leads (header and cells as an ops person's export would have them), imports it
with `closeloop import lead FILE` into a fresh database with the lead template and its team (one
transaction: the records, their versions and audit events, each lead's automations), and times
it with its peak resident memory (the child's `ru_maxrss`). Then, in the same run, parses the
same file with Python's csv module and inserts the same rows as JSON into one table with the
lead's key and indexes, WAL and synchronous=FULL, in one transaction: the floor. Prints both and
their ratio.
"""
import argparse, csv, json, os, resource, sqlite3, subprocess, sys, tempfile, time

REGIONS = [("east", "m_li"), ("south", "m_zhou"), ("north", "m_feng"), ("west", "m_he")]


def write_file(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("source,customer,phone,region,owner,summary\n")
        for i in range(rows):
            region, owner = REGIONS[i % 4]
            f.write(f"expo,客户{i:07}有限公司,139{i:08},{region},{owner},电话沟通，客户有采购意向，下周安排演示\n")


def closeloop_import(binary, root, work, path):
    db = os.path.join(work, "closeloop.db")
    run = lambda *args: subprocess.run([binary, "--db", db, *args], check=True, capture_output=True, text=True)
    run("install", "lead-followup")
    run("members", "import", os.path.join(root, "app-templates/lead-followup/data/members.csv"))
    started = time.time()
    out = run("import", "lead", path)
    seconds = time.time() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak_mib, out.stdout.strip()


def raw_insert(work, path):
    db = os.path.join(work, "raw.db")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.time()
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("""CREATE TABLE rec_lead (id TEXT PRIMARY KEY, version INTEGER, state TEXT, owner TEXT,
        data TEXT, created_at TEXT, f_phone TEXT GENERATED ALWAYS AS (data ->> '$.phone') VIRTUAL,
        f_region TEXT GENERATED ALWAYS AS (data ->> '$.region') VIRTUAL)""")
    for ddl in ("CREATE UNIQUE INDEX ix_phone ON rec_lead(f_phone)", "CREATE INDEX ix_region ON rec_lead(f_region)",
                "CREATE INDEX ix_state ON rec_lead(state)", "CREATE INDEX ix_owner ON rec_lead(owner)"):
        c.execute(ddl)
    c.execute("BEGIN")
    n = 0
    with open(path, encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            data = json.dumps(row, ensure_ascii=False, sort_keys=True)
            c.execute("INSERT INTO rec_lead VALUES (?, 1, 'new', ?, ?, '2026-11-26T01:00:00Z')",
                      (f"LEAD-2026-{i + 1:07}", row["owner"], data))
            n += 1
    c.execute("COMMIT")
    seconds = time.time() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return seconds, peak_mib, n, before / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--closeloop", default="target/release/closeloop")
    a = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="closeloop-bench-import-") as work:
        path = os.path.join(work, "leads.csv")
        write_file(path, a.rows)
        size = os.path.getsize(path) / (1024 * 1024)
        c_s, c_mib, said = closeloop_import(a.closeloop, root, work, path)
        r_s, r_mib, n, r_before = raw_insert(work, path)
    print(f"file: {a.rows} leads, {size:.0f} MiB of CSV")
    print(f"(a) closeloop import lead FILE: {c_s:.1f} s, peak RSS {c_mib:.0f} MiB ({said})")
    print(f"(b) raw csv parse + insert of the same rows, one table, same key and indexes: {r_s:.1f} s, "
          f"peak RSS {r_mib:.0f} MiB ({r_before:.0f} MiB before)")
    print(f"ratio (a)/(b): {c_s / max(r_s, 1e-9):.2f}")
    if n != a.rows:
        sys.exit(f"the raw insert wrote {n} rows of {a.rows}")


if __name__ == "__main__":
    main()
