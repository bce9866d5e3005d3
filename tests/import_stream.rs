//! CSV import as a stream with caps (RELIABILITY C1, C2 and the fault "CSV import is neither
//! streamed nor capped"): memory does not grow with the file, one huge cell is refused after
//! its first MiB, a bad byte or a bad row is named by its row, and cells are stored verbatim.

use std::io::Write;
use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::{template, EngineError, ImportOptions, Runtime};
use serde_json::Value;

use crate::support::{cost_alone, TempDir};

fn runtime(dir: &TempDir) -> Runtime {
    std::fs::create_dir_all(&dir.0).unwrap();
    let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::store_in(dir), clock).unwrap();
    let t = template("lead-followup").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    rt
}

/// A leads file of `rows` rows, written to disk.
fn leads_file(dir: &TempDir, rows: usize) -> std::path::PathBuf {
    let path = dir.0.join(format!("leads-{rows}.csv"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, "source,customer,phone,region,owner,summary").unwrap();
    for i in 0..rows {
        writeln!(f, "expo,客户{i:06}有限公司,139{i:08},east,m_li,电话沟通，客户有采购意向，下周安排演示").unwrap();
    }
    f.flush().unwrap();
    path
}

fn import_file(rt: &mut Runtime, path: &std::path::Path) -> Result<closeloop::ImportReport, EngineError> {
    let mut input = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    rt.import_csv_from("lead", &mut input, &ImportOptions::default(), &mut |_| {})
}

fn import_cost(label: &str, rows: usize) -> closeloop::ImportReport {
    let dir = TempDir::new(&format!("stream-{label}"));
    let mut rt = runtime(&dir);
    let path = leads_file(&dir, rows);
    import_file(&mut rt, &path).unwrap()
}

#[test]
fn a_four_times_larger_import_needs_no_more_memory() {
    // The old import read the file whole and every row into a list: 1,000,000 rows peaked at
    // 1.1 GB, growing with each row. Streamed, the peak does not follow the file's size.
    const TEST: &str = "import_stream::a_four_times_larger_import_needs_no_more_memory";
    let small = cost_alone(TEST, "small", || (), |()| assert_eq!(import_cost("small", 3_000).created, 3_000));
    let large = cost_alone(TEST, "large", || (), |()| assert_eq!(import_cost("large", 12_000).created, 12_000));
    let (Some(s), Some(l)) = (small.peak_above_kib, large.peak_above_kib) else { return };
    assert!(l <= s + 6 * 1024, "3,000 rows: +{s} KiB; 12,000 rows: +{l} KiB");
}

#[test]
fn one_fifty_megabyte_cell_is_refused_after_its_first_mebibyte_not_read_whole() {
    const TEST: &str = "import_stream::one_fifty_megabyte_cell_is_refused_after_its_first_mebibyte_not_read_whole";
    let cost = cost_alone(
        TEST,
        "huge-cell",
        || {
            let dir = TempDir::new("stream-huge-cell");
            let rt = runtime(&dir);
            let path = dir.0.join("huge.csv");
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            writeln!(f, "source,customer,phone,region\nexpo,客户一,13900000001,east").unwrap();
            write!(f, "expo,").unwrap();
            let chunk = "很长".repeat(4096);
            for _ in 0..(50 * 1024 * 1024 / chunk.len()) {
                f.write_all(chunk.as_bytes()).unwrap();
            }
            writeln!(f, ",13900000002,east").unwrap();
            f.flush().unwrap();
            (dir, rt, path)
        },
        |(_dir, mut rt, path)| {
            let err = import_file(&mut rt, &path).unwrap_err().to_string();
            assert!(err.starts_with("row 3: a row is over 1 MiB"), "{err}");
            assert_eq!(rt.list("lead", &Default::default()).unwrap().len(), 0, "nothing of it is stored");
        },
    );
    if let Some(peak) = cost.peak_above_kib {
        assert!(peak < 24 * 1024, "refusing a 50 MB cell peaked {peak} KiB above the start");
    }
}

#[test]
fn a_bad_byte_or_a_short_row_is_named_by_its_row_and_nothing_is_stored() {
    let dir = TempDir::new("stream-bad-bytes");
    let mut rt = runtime(&dir);
    let mut text = b"source,customer,phone,region\nexpo,\xe5\xae\xa2\xe6\x88\xb7,13900000001,east\n".to_vec();
    text.extend_from_slice(b"expo,\xff\xfe,13900000002,east\n");
    let err = rt.import_csv("lead", &text, &ImportOptions::default(), &mut |_| {}).unwrap_err().to_string();
    assert!(err.starts_with("row 3:") && err.contains("UTF-8"), "{err}");
    // Past the first 64 KiB the reader names the row too.
    let mut long = b"source,customer,phone,region\n".to_vec();
    for i in 0..3000 {
        long.extend_from_slice(format!("expo,\u{5ba2}\u{6237}{i},139{i:08},east\n").as_bytes());
    }
    long.extend_from_slice(b"expo,\xff\xfe,13999999999,east\n");
    let err = rt.import_csv("lead", &long, &ImportOptions::default(), &mut |_| {}).unwrap_err().to_string();
    assert!(err.starts_with("row 3002:") && err.contains("UTF-8"), "{err}");
    let short = "source,customer,phone,region\nexpo,客户一,13900000001,east\nexpo,客户二\n";
    let Err(EngineError::Import(report)) =
        rt.import_csv("lead", short.as_bytes(), &ImportOptions::default(), &mut |_| {})
    else {
        panic!("a short row refuses the file")
    };
    assert_eq!((report.problems[0].row, report.problems[0].code.as_str()), (3, "CELL_COUNT"), "{report:?}");
    assert_eq!(rt.list("lead", &Default::default()).unwrap().len(), 0, "all or nothing");
}

#[test]
fn a_leading_tab_or_carriage_return_in_a_cell_is_stored_verbatim_and_exported_guarded() {
    // C1: import used to trim them away.
    let dir = TempDir::new("stream-verbatim");
    let mut rt = runtime(&dir);
    let csv = "source,customer,phone,region,summary\nexpo,\"\t=1+2\",13900000001,east,\"\rcmd|' /C calc'!A0\"\n";
    rt.import_csv("lead", csv.as_bytes(), &ImportOptions::default(), &mut |_| {}).unwrap();
    let lead = &rt.list("lead", &Default::default()).unwrap()[0];
    assert_eq!(lead.data["customer"], Value::from("\t=1+2"));
    assert_eq!(lead.data["summary"], Value::from("\rcmd|' /C calc'!A0"));
    let mut out = Vec::new();
    rt.export_csv("lead", &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(",'\t=1+2,"), "{text:?}");
    // The export imports back exactly.
    let again = rt.import_csv("lead", text.as_bytes(), &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!((again.unchanged, again.created), (1, 0), "{again:?}");
}
