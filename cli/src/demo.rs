//! `closeloop demo`: one simulated month of a sales team the size of the article closeloop
//! comes from, run through the real engine on a real SQLite file, ending in the penetration
//! report. Like `bench`, it only drives the public library API: every lead, contact, quote,
//! decision, signature, payment and task goes through the same calls a deployment makes, at
//! times a seeded generator draws, on a clock the simulation moves and `tick` follows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use closeloop::clock::{Clock, ManualClock};
use closeloop::store::{ListQuery, Store};
use closeloop::{Evidence, ImportOptions, Runtime};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};

use crate::UserError;

/// What to simulate.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The database to write (replaced when it is an earlier demo's).
    pub out: PathBuf,
    /// The generator's seed: the same seed gives the same month.
    pub seed: u64,
    /// Sales reps (18 offices share them).
    pub reps: usize,
    /// Days simulated from Monday 2026-11-02.
    pub days: i64,
}

/// What the month held.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Simulated {
    pub members: usize,
    pub reps: usize,
    pub offices: usize,
    pub leads: usize,
    pub contacted: usize,
    pub lost: usize,
    pub quotes: usize,
    pub submitted: usize,
    pub approvals: usize,
    pub rejections: usize,
    pub signed: usize,
    pub payments: usize,
    pub tasks_done: usize,
    pub ticks: usize,
    pub refused: usize,
    pub from: String,
    pub to: String,
}

/// The behaviour the month assumes, as the demo states it.
pub(crate) const ASSUMPTIONS: &[&str] = &[
    "leads arrive through the day, most between 08:00 and 20:00, about 0.8 per rep per working day and a third of that at weekends; the app's own rule assigns them by region and load",
    "offices differ: their reps contact 66% to 88% of leads within the first day (77% over all, median about 3 hours); of the rest, 55% are contacted late, 18% are marked lost, 27% never",
    "a late lead is contacted 2-8 hours after the 24-hour alert reaches its rep and the supervisor's board (the reminder's effect)",
    "each rep prices about 2.5 quotes a month from the catalog at 80-100% of list price (some below floor); 15% ask for prepayment and go to legal",
    "supervisors decide in 1-24 hours, but depending on the office 4% to 24% of quotes wait past the 1-day timeout; finance and legal decide in 4-60 hours, one in twenty later",
    "finance rejects 40% of quotes priced below floor; the rep raises the price within a day and submits again",
    "85% of approved quotes are signed by the customer through the link within 0.5-5 days",
    "the 32 distributors are on ten-week pilot contracts delivered in early November, so their three after-payment touches fall due inside the month",
    "finance posts each distributor's payment a day or two before delivery; CSMs do 93% of after-payment tasks on time (within the last 3 days before due), 5% 1-5 days late, 2% never",
];

/// A small deterministic generator (splitmix64): the same seed, the same month (and, for
/// `bench report`, the same year).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// A whole number in `lo..hi`.
    pub(crate) fn within(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo).max(1) as u64) as i64
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[(self.next() % items.len() as u64) as usize])
    }
}

const REGIONS: &[&str] = &["east", "south", "north", "west"];
const SURNAMES: &[&str] =
    &["李", "王", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭"];
const GIVEN: &[&str] =
    &["伟", "芳", "敏", "静", "磊", "洋", "婷", "杰", "军", "丽", "强", "雪", "浩", "琳", "涛", "燕"];
const CITIES: &[&str] =
    &["上海", "杭州", "南京", "苏州", "广州", "深圳", "厦门", "北京", "天津", "济南", "成都", "重庆", "西安"];

/// Something that happens at a moment of the month.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    Tick,
    Lead,
    Contact { id: String, lose: bool },
    Quote { rep: String },
    Decide { id: String },
    Revise { id: String, rep: String },
    Sign { id: String },
    Payment { account: String, name: String },
    Task { id: i64, actor: String, attachment: bool },
}

/// The month in progress: the engine, its clock, the agenda and the tallies.
struct Month {
    rt: Runtime,
    clock: Arc<ManualClock>,
    rng: Rng,
    agenda: BinaryHeap<Reverse<(Timestamp, u64, Job)>>,
    order: u64,
    reps: Vec<(String, String)>,
    customers: Vec<(String, String)>,
    products: Vec<(String, f64, f64)>,
    phones: u64,
    /// The file CSMs attach where a task asks for one (a call note beside the database).
    evidence: PathBuf,
    done: Simulated,
}

/// The office a rep (`r_042`) works in: reps are spread over the 18 offices in turn.
fn office(rep: &str) -> usize {
    rep.trim_start_matches("r_").parse::<usize>().map_or(0, |n| n % 18)
}

/// The share of an office's leads its reps answer within the day: 66% to 88%, offices mixed.
fn pace(office: usize) -> f64 {
    0.66 + 0.22 * ((office * 7) % 18) as f64 / 17.0
}

/// How often an office's supervisor lets a quote wait past the one-day timeout: 4% to 24%.
fn slowness(office: usize) -> f64 {
    0.04 + 0.2 * ((office * 5) % 18) as f64 / 17.0
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn hours(h: f64) -> SignedDuration {
    SignedDuration::from_secs((h * 3600.0) as i64)
}

fn name(rng: &mut Rng) -> String {
    let s = rng.pick(SURNAMES).copied().unwrap_or("李");
    let g = rng.pick(GIVEN).copied().unwrap_or("伟");
    format!("{s}{g}")
}

/// The team as a members CSV: 18 offices in 4 regions, each with a supervisor and a CSM, the
/// reps spread over them, finance, legal and a director per region.
fn team(rng: &mut Rng, reps: usize) -> (String, Vec<(String, String)>) {
    let mut csv = String::from("id,name,roles,region,manager,active,capacity\n");
    for r in REGIONS {
        csv.push_str(&format!("d_{r},{},director,{r},,true,0\n", name(rng)));
    }
    for o in 0..18 {
        let r = REGIONS[o % REGIONS.len()];
        csv.push_str(&format!("s_{o:02},{},sales_supervisor,{r},d_{r},true,0\n", name(rng)));
        csv.push_str(&format!("c_{o:02},{},csm,{r},d_{r},true,200\n", name(rng)));
    }
    let mut list = Vec::new();
    for i in 0..reps {
        let o = i % 18;
        let r = REGIONS[o % REGIONS.len()];
        csv.push_str(&format!("r_{i:03},{},sales_rep,{r},s_{o:02},true,1000\n", name(rng)));
        list.push((format!("r_{i:03}"), r.to_string()));
    }
    for i in 1..=3 {
        csv.push_str(&format!("f_{i},{},finance,,,true,0\n", name(rng)));
    }
    for i in 1..=2 {
        csv.push_str(&format!("l_{i},{},legal,,,true,0\n", name(rng)));
    }
    (csv, list)
}

/// Refuses to replace a file that is not an earlier demo's database.
fn make_room(path: &Path) -> Result<(), UserError> {
    if !path.exists() {
        return Ok(());
    }
    let store = Store::open(path).map_err(|e| {
        UserError(format!("{} exists and is not a closeloop database ({e}); give --out another file", path.display()))
    })?;
    let rt = Runtime::open(store, Arc::new(closeloop::clock::SystemClock))
        .map_err(|e| UserError(format!("cannot open {}: {e}", path.display())))?;
    let members = rt.members().map_err(|e| UserError(e.to_string()))?;
    let demo = members.is_empty() || members.iter().any(|m| m.id == "s_00");
    drop(rt);
    if !demo {
        return Err(UserError(format!(
            "{} holds a team that is not the demo's; it is left alone: give --out another file",
            path.display()
        )));
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(|e| UserError(format!("cannot replace {}: {e}", file.display())))?;
        }
    }
    Ok(())
}

/// Runs the month; the database stays at `options.out` to look around in, and the runtime
/// comes back with its clock at the month's end, for the report.
pub(crate) fn simulate(options: &Options) -> Result<(Simulated, Runtime), UserError> {
    make_room(&options.out)?;
    let start: Timestamp = "2026-11-02T00:00:00+08:00".parse().map_err(|e: jiff::Error| UserError(e.to_string()))?;
    let store =
        Store::open(&options.out).map_err(|e| UserError(format!("cannot create {}: {e}", options.out.display())))?;
    let clock = Arc::new(ManualClock::new(start - hours(24.0 * 14.0)));
    let rt = Runtime::open(store, clock.clone()).map_err(|e| UserError(e.to_string()))?;
    let mut month = Month {
        rt,
        clock,
        rng: Rng(options.seed),
        agenda: BinaryHeap::new(),
        order: 0,
        reps: Vec::new(),
        customers: Vec::new(),
        products: Vec::new(),
        phones: 0,
        evidence: options.out.with_extension("evidence.txt"),
        done: Simulated::default(),
    };
    std::fs::write(&month.evidence, "客户回访记录 / call note\n")
        .map_err(|e| UserError(format!("cannot write {}: {e}", month.evidence.display())))?;
    month.set_up(options.reps)?;
    month.clock.set(start);
    month.plan(start, options.days);
    let end = start + hours(24.0 * options.days as f64);
    while let Some(Reverse((at, _, job))) = month.agenda.pop() {
        if at > end {
            break;
        }
        month.clock.set(at);
        month.run(job)?;
    }
    month.clock.set(end);
    month.rt.tick().map_err(|e| UserError(e.to_string()))?;
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
    month.done.from = start.to_zoned(tz.clone()).date().to_string();
    month.done.to = (end - hours(1.0)).to_zoned(tz).date().to_string();
    Ok((month.done, month.rt))
}

impl Month {
    fn at(&mut self, when: Timestamp, job: Job) {
        self.order += 1;
        self.agenda.push(Reverse((when, self.order, job)));
    }

    fn err(e: impl std::fmt::Display) -> UserError {
        UserError(format!("the demo stopped: {e}"))
    }

    /// The three templates, the team, the catalog and the 32 distributors.
    fn set_up(&mut self, reps: usize) -> Result<(), UserError> {
        for name in ["lead-followup", "quote-approval", "customer-success"] {
            let t = closeloop::template(name).ok_or_else(|| UserError(format!("the {name} template is missing")))?;
            self.rt.install(&t.app_files(), "system", false).map_err(Self::err)?;
        }
        let (csv, list) = team(&mut self.rng, reps);
        let report = self.rt.import_members(csv.as_bytes(), "system").map_err(Self::err)?;
        self.done.members = report.created;
        self.done.reps = list.len();
        self.done.offices = 18;
        self.reps = list;
        let t =
            closeloop::template("quote-approval").ok_or_else(|| UserError("the quote template is missing".into()))?;
        let products = t.files.iter().find(|(p, _)| *p == "data/products.csv").map(|(_, c)| *c).unwrap_or_default();
        self.rt
            .import_csv("product", products.as_bytes(), &ImportOptions::default(), &mut |_| {})
            .map_err(Self::err)?;
        for p in self.rt.list("product", &ListQuery::default()).map_err(Self::err)? {
            let num = |k: &str| p.data.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let sku = p.data.get("sku").and_then(Value::as_str).unwrap_or_default().to_string();
            self.products.push((sku, num("list_price"), num("floor_price")));
        }
        self.distributors()
    }

    fn distributors(&mut self) -> Result<(), UserError> {
        let mut customers = String::from("code,name,contact,phone,region,owner\n");
        let mut accounts =
            String::from("customer,region,owner,contact_phone,delivered_at,payment_due,contract_end,pain_points\n");
        for i in 0..32 {
            let region = REGIONS[i % REGIONS.len()];
            let city = CITIES[i % CITIES.len()];
            let name = format!(
                "{city}{}经销有限公司",
                ["恒通", "瑞丰", "远大", "华信", "永盛", "东联", "新源", "博达"][i % 8]
            );
            let name = if i >= 8 { format!("{name}{}", i / 8 + 1) } else { name };
            let rep = self.reps.iter().filter(|(_, r)| r == region).nth(i / 4).or(self.reps.first());
            let rep = rep.map(|(id, _)| id.clone()).unwrap_or_default();
            let phone = format!("139{:08}", 10_000 + i);
            customers
                .push_str(&format!("D-{i:03},{name},{},{phone},{region},{rep}\n", crate::demo::name(&mut self.rng)));
            // Pilot contracts: delivered in early November, payment terms of two to three weeks,
            // ten-week contracts, so the three touches (7 days after delivery, 5 days before
            // the term ends, 45 days before the contract ends) fall due in that order, most of
            // them inside the month.
            let delivered = 3 + (i % 10);
            let due = delivered + 13 + (i * 7 % 6);
            let end = delivered + 65 + (i * 11 % 10);
            let day = |n: usize| (jiff::civil::date(2026, 11, 1) + jiff::Span::new().days(n as i64)).to_string();
            accounts.push_str(&format!(
                "{name},{region},c_{:02},{phone},{},{},{},\n",
                i % 18,
                day(delivered),
                day(due),
                day(end)
            ));
        }
        let options = ImportOptions::default();
        self.rt.import_csv("customer", customers.as_bytes(), &options, &mut |_| {}).map_err(Self::err)?;
        self.rt.import_csv("account", accounts.as_bytes(), &options, &mut |_| {}).map_err(Self::err)?;
        for c in self.rt.list("customer", &ListQuery::default()).map_err(Self::err)? {
            let region = c.data.get("region").and_then(Value::as_str).unwrap_or_default().to_string();
            self.customers.push((c.id, region));
        }
        Ok(())
    }
}

impl Month {
    /// Puts the month's arrivals, quotes, payments and hourly ticks on the agenda.
    fn plan(&mut self, start: Timestamp, days: i64) {
        for h in 1..=days * 24 {
            self.at(start + hours(h as f64), Job::Tick);
        }
        let reps = self.reps.clone();
        for d in 0..days {
            let day = start + hours(24.0 * d as f64);
            let weekend = matches!(d % 7, 5 | 6);
            let per_rep = if weekend { 0.27 } else { 0.8 };
            let leads = (reps.len() as f64 * per_rep).round() as usize;
            for _ in 0..leads {
                // Most leads come in the working day; a few at night.
                let h = if self.rng.unit() < 0.9 { self.rng.between(8.0, 20.0) } else { self.rng.between(0.0, 24.0) };
                self.at(day + hours(h), Job::Lead);
            }
            if !weekend {
                for (rep, _) in &reps {
                    if self.rng.unit() < 2.5 / 22.0 {
                        let h = self.rng.between(9.5, 17.5);
                        self.at(day + hours(h), Job::Quote { rep: rep.clone() });
                    }
                }
            }
        }
        // Finance posts each distributor's payment a day or two before its delivery.
        let accounts = self.rt.list("account", &ListQuery::default()).unwrap_or_default();
        for a in accounts {
            let name = a.data.get("customer").and_then(Value::as_str).unwrap_or_default().to_string();
            let delivered =
                a.data.get("delivered_at").and_then(Value::as_str).and_then(|d| d.parse::<jiff::civil::Date>().ok());
            let offset =
                delivered.and_then(|d| d.since(jiff::civil::date(2026, 11, 2)).ok()).map_or(0, |s| s.get_days());
            let d = (offset as f64 - self.rng.between(1.0, 3.0)).floor().clamp(0.0, (days - 1).max(0) as f64);
            let when = start + hours(24.0 * d + self.rng.between(9.0, 17.0));
            self.at(when, Job::Payment { account: a.id, name });
        }
    }

    fn run(&mut self, job: Job) -> Result<(), UserError> {
        match job {
            Job::Tick => {
                self.rt.tick().map_err(Self::err)?;
                self.done.ticks += 1;
            }
            Job::Lead => self.lead()?,
            Job::Contact { id, lose } => self.contact(&id, lose),
            Job::Quote { rep } => self.quote(&rep)?,
            Job::Decide { id } => self.decide(&id),
            Job::Revise { id, rep } => self.revise(&id, &rep),
            Job::Sign { id } => self.sign(&id),
            Job::Payment { account, name } => self.payment(&account, &name),
            Job::Task { id, actor, attachment } => {
                let attachment = attachment.then(|| self.evidence.display().to_string());
                let evidence = Evidence { summary: Some("电话回访，客户反馈良好".into()), attachment };
                match self.rt.complete_task(id, &actor, evidence) {
                    Ok(_) => self.done.tasks_done += 1,
                    Err(_) => self.done.refused += 1,
                }
            }
        }
        Ok(())
    }

    /// A lead arrives from the web, the app assigns it, and its rep's response is drawn.
    fn lead(&mut self) -> Result<(), UserError> {
        self.phones += 1;
        let region = self.rng.pick(REGIONS).copied().unwrap_or("east");
        let source = self.rng.pick(&["expo", "wechat_oa", "referral"]).copied().unwrap_or("expo");
        let city = self.rng.pick(CITIES).copied().unwrap_or("上海");
        let data = json!({"source": source, "customer": format!("{city}客户{}", self.phones),
                          "phone": format!("138{:08}", self.phones), "region": region});
        let record = self.rt.submit("lead", obj(data), "api").map_err(Self::err)?;
        self.done.leads += 1;
        let now = self.clock.now();
        // The rep the app chose answers at their office's pace.
        let p = pace(office(record.owner.as_deref().unwrap_or_default()));
        let u = self.rng.unit();
        let (after, lose) = if u < p {
            // Skewed towards the first hours: the median is about 3 hours.
            (0.2 + 23.5 * self.rng.unit().powi(3), false)
        } else if u < p + (1.0 - p) * 0.55 {
            (24.0 + self.rng.between(2.0, 8.0), false)
        } else if u < p + (1.0 - p) * 0.73 {
            (self.rng.between(1.0, 20.0), true)
        } else {
            return Ok(());
        };
        self.at(now + hours(after), Job::Contact { id: record.id, lose });
        Ok(())
    }

    /// The lead's owner (now: reassignment may have moved it) contacts it or marks it lost.
    fn contact(&mut self, id: &str, lose: bool) {
        let Ok(record) = self.rt.get("lead", id) else { return };
        let Some(owner) = record.owner else { return };
        let (action, data) = if lose {
            ("lose", json!({"summary": "客户暂无需求"}))
        } else {
            ("contact", json!({"summary": "电话沟通，客户有意向", "next_step": "约下周演示"}))
        };
        match self.rt.act("lead", id, action, &owner, obj(data)) {
            Ok(_) if lose => self.done.lost += 1,
            Ok(_) => self.done.contacted += 1,
            Err(_) => self.done.refused += 1,
        }
    }
}

impl Month {
    /// A rep prices a quote from the catalog for a distributor of the region and submits it.
    fn quote(&mut self, rep: &str) -> Result<(), UserError> {
        let region = self.reps.iter().find(|(id, _)| id == rep).map(|(_, r)| r.clone()).unwrap_or_default();
        let local: Vec<String> =
            self.customers.iter().filter(|(_, r)| *r == region).map(|(id, _)| id.clone()).collect();
        let Some(customer) = self.rng.pick(&local).or(self.customers.first().map(|(id, _)| id)).cloned() else {
            return Ok(());
        };
        let mut lines = Vec::new();
        for _ in 0..1 + self.rng.next() % 3 {
            let Some((sku, list, _)) = self.rng.pick(&self.products).cloned() else { break };
            let price = (list * self.rng.between(0.8, 1.0) / 100.0).round() * 100.0;
            lines.push(json!({"sku": sku, "qty": 1 + self.rng.next() % 10, "unit_price": price}));
        }
        let terms = self.rng.unit();
        let mut data = json!({"customer": customer, "contact_phone": format!("137{:08}", self.rng.next() % 100_000_000),
                              "owner": rep, "valid_until": "2027-01-31", "lines": lines,
                              "payment_terms": if terms < 0.6 { "cod" } else if terms < 0.85 { "net30" } else { "prepay" }});
        if terms >= 0.85 {
            data["prepay_percent"] = json!(30 + self.rng.next() % 41);
        }
        let Ok(record) = self.rt.submit("quote", obj(data), rep) else {
            self.done.refused += 1;
            return Ok(());
        };
        self.done.quotes += 1;
        if self.rt.act("quote", &record.id, "submit", rep, Map::new()).is_ok() {
            self.done.submitted += 1;
            // Some offices' supervisors let quotes wait past the step's one-day timeout.
            let slow = if self.rng.unit() < slowness(office(rep)) { 30.0 } else { 0.0 };
            let when = self.clock.now() + hours(self.rng.between(1.0, 24.0) + slow);
            self.at(when, Job::Decide { id: record.id });
        }
        Ok(())
    }

    /// The step in hand is decided by one of its approvers, or waits for the customer.
    fn decide(&mut self, id: &str) {
        let Ok(Some(run)) = self.rt.approval("quote", id) else { return };
        if run.status != closeloop::ApprovalStatus::Pending {
            return;
        }
        let Some(step) = run.steps.iter().find(|s| s.status == closeloop::StepStatus::Open) else { return };
        let now = self.clock.now();
        if step.step == "customer_sign" {
            if self.rng.unit() < 0.85 {
                let when = now + hours(self.rng.between(12.0, 120.0));
                self.at(when, Job::Sign { id: id.to_string() });
            }
            return;
        }
        let Some(who) = self.rng.pick(&step.approvers).cloned() else { return };
        // `below_floor` lists the lines priced under the floor; empty when none is.
        let below = self
            .rt
            .get("quote", id)
            .ok()
            .and_then(|q| q.data.get("below_floor").and_then(Value::as_array).map(|lines| !lines.is_empty()));
        let verdict = if step.step == "finance" && below == Some(true) && self.rng.unit() < 0.4 {
            self.rt.reject("quote", id, &who, "低于底价，请调整价格后重新提交").map(|_| false)
        } else {
            self.rt.approve("quote", id, &who, Some("同意")).map(|_| true)
        };
        match verdict {
            Ok(true) => {
                self.done.approvals += 1;
                let (lo, hi) = match step.step.as_str() {
                    "supervisor" => (2.0, 40.0),
                    _ => (4.0, 60.0),
                };
                // One decision in twenty waits past its step's timeout.
                let late = if self.rng.unit() < 0.05 { 30.0 } else { 0.0 };
                let when = now + hours(self.rng.between(lo, hi) + late);
                self.at(when, Job::Decide { id: id.to_string() });
            }
            Ok(false) => {
                self.done.rejections += 1;
                let rep = self.rt.get("quote", id).ok().and_then(|q| q.owner).unwrap_or_default();
                let when = now + hours(self.rng.between(2.0, 24.0));
                self.at(when, Job::Revise { id: id.to_string(), rep });
            }
            Err(_) => self.done.refused += 1,
        }
    }

    /// After a rejection the rep raises every price to list and submits again.
    fn revise(&mut self, id: &str, rep: &str) {
        let Ok(quote) = self.rt.get("quote", id) else { return };
        let lines: Vec<Value> = quote
            .data
            .get("lines")
            .and_then(Value::as_array)
            .map(|ls| {
                ls.iter().map(|l| json!({"sku": l["sku"], "qty": l["qty"], "unit_price": l["list_price"]})).collect()
            })
            .unwrap_or_default();
        let edited = self.rt.update("quote", id, obj(json!({"lines": lines})), rep);
        if edited.is_ok() && self.rt.act("quote", id, "submit", rep, Map::new()).is_ok() {
            self.done.submitted += 1;
            let when = self.clock.now() + hours(self.rng.between(1.0, 30.0));
            self.at(when, Job::Decide { id: id.to_string() });
        } else {
            self.done.refused += 1;
        }
    }

    /// The customer opens the link the rep sent and signs.
    fn sign(&mut self, id: &str) {
        let Ok(quote) = self.rt.get("quote", id) else { return };
        let rep = quote.owner.unwrap_or_default();
        let signed = self
            .rt
            .sign_link("quote", id, "http://localhost:8080", &rep)
            .and_then(|link| self.rt.sign(&link.token, "客户签署人"));
        match signed {
            Ok(_) => self.done.signed += 1,
            Err(_) => self.done.refused += 1,
        }
    }

    /// Finance posts a payment; the CSM's after-payment tasks are done on time, late or never.
    fn payment(&mut self, account: &str, name: &str) {
        let now = self.clock.now();
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
        let paid_at = now.to_zoned(tz.clone()).date().to_string();
        let data = json!({"customer": name, "amount": 10_000 + self.rng.next() % 90_000, "paid_at": paid_at});
        if self.rt.event("payment.received", obj(data), "f_1").is_err() {
            self.done.refused += 1;
            return;
        }
        self.done.payments += 1;
        for task in self.rt.tasks_of("account", account).unwrap_or_default() {
            let Some(actor) = task.assignee.clone() else { continue };
            let due = task.due.as_deref().and_then(|d| {
                d.parse::<jiff::civil::Date>()
                    .ok()
                    .and_then(|day| day.to_zoned(tz.clone()).ok())
                    .map(|z| z.timestamp() + hours(17.0))
                    .or_else(|| d.parse::<Timestamp>().ok())
            });
            let Some(due) = due else { continue };
            let u = self.rng.unit();
            // Done near its due time, so the tasks come in the order they fall due.
            let when = if u < 0.93 {
                let room = (due.duration_since(now).as_secs_f64() / 3600.0).clamp(1.0, 72.0);
                due - hours(self.rng.between(0.5, room))
            } else if u < 0.98 {
                due + hours(self.rng.between(24.0, 120.0))
            } else {
                continue;
            };
            let attachment = task.needs.iter().any(|n| n == "attachment");
            self.at(when, Job::Task { id: task.id, actor, attachment });
        }
    }
}
