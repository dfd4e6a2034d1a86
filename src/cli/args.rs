//! The command line as CONTRACTS §1 names it: global options, verbs and their options.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// disburse: pays the monthly minimum living allowance (低保), from approved
/// households to signed bank files, bank results and a reconciliation an auditor signs.
#[derive(Debug, Parser)]
#[command(name = "disburse", version, about)]
pub struct Cli {
    /// Database URL: sqlite://FILE (created on first use) or postgres://…
    #[arg(
        long,
        global = true,
        env = "DISBURSE_DB",
        default_value = "sqlite://disburse.db"
    )]
    pub db: String,
    /// Configuration file; default disburse.toml if present, else built-in defaults.
    #[arg(long, global = true, env = "DISBURSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Who acts (recorded in the audit log); default the login name.
    #[arg(long, global = true, env = "DISBURSE_USER")]
    pub user: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole month on generated data in a fresh embedded database.
    Demo(DemoArgs),
    /// Import a file from civil affairs or the treasury.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Create, inspect, approve and export monthly runs.
    #[command(subcommand)]
    Run(RunCommand),
    /// Register people who may approve runs.
    #[command(subcommand)]
    Approver(ApproverCommand),
    /// Bank results.
    #[command(subcommand)]
    Returns(ReturnsCommand),
    /// Three-way reconciliation report for a run.
    Reconcile(ReconcileArgs),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The scheduled service: cron-driven runs, inbox polling, HTTP API.
    Serve(ServeArgs),
    /// API tokens for the service (`--user NAME` is the person the token is for).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Benchmark: the whole month on N generated households, stage by stage.
    Bench(BenchArgs),
    /// A month split into scopes for several workers on one database (issue #7).
    #[command(subcommand)]
    Work(WorkCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkCommand {
    /// Plan a month: one work item and reserved run number per region prefix.
    Plan(WorkPlanArgs),
    /// Be one worker: compute planned scopes, export approved ones, until none is left.
    Run(WorkRunArgs),
    /// The month's work items: step, holder, lease, attempts, last error.
    List(WorkListArgs),
    /// Cancel a planned scope not yet computed, with a reason (a computed one: `run cancel`).
    Cancel(WorkCancelArgs),
}

#[derive(Debug, Args)]
pub struct WorkCancelArgs {
    /// The item's number, as `work list` shows it.
    pub work_id: i64,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct WorkPlanArgs {
    #[arg(long)]
    pub month: String,
    #[arg(long, default_value = "dibao")]
    pub programme: String,
    /// Region code prefixes, comma-separated, none a prefix of another (e.g. 11,12,13).
    #[arg(long)]
    pub regions: String,
    /// Day the banks credit households; default the configured pay day of the month.
    #[arg(long)]
    pub pay_date: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkRunArgs {
    /// Each exported run's files go to OUT/<run id>/.
    #[arg(long)]
    pub out: PathBuf,
    /// Signing key; default the configured one.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The worker's name in leases; default host name and process id.
    #[arg(long)]
    pub worker: Option<String>,
    /// How long a claimed item is this worker's; longer than its longest step.
    #[arg(long, default_value_t = 900)]
    pub lease_seconds: i64,
}

#[derive(Debug, Args)]
pub struct WorkListArgs {
    #[arg(long)]
    pub month: String,
    #[arg(long, default_value = "dibao")]
    pub programme: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub households: u64,
    /// Where the benchmark writes its database (SQLite default), files and bench.csv.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// Only the bank-file work (render, parse back, SHA-256, sign) on generated
    /// payments, without a database; writes payments.csv for scripts/sepaxml_bench.py.
    #[arg(long)]
    pub formats_only: bool,
    /// Only write OUT/roster.csv of N generated households (for scripts that import it,
    /// such as scripts/pg_national_bench.sh).
    #[arg(long, conflicts_with = "formats_only")]
    pub roster_only: bool,
    /// Sign the bank files with this PKCS#8 PEM key (RSA, EC P-256 or Ed25519, private
    /// to its owner) instead of a fresh Ed25519 key. Banks expect RSA (CONTRACTS §3.3):
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out k.pem`.
    #[arg(long, conflicts_with = "roster_only")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of generated households.
    #[arg(long, default_value_t = 200)]
    pub households: u32,
    /// Where the demo writes its database and files.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportFileArgs {
    pub file: PathBuf,
    /// Text encoding of the file: utf-8 (default), gbk or gb18030.
    #[arg(long, default_value = "utf-8")]
    pub encoding: String,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Households approved by civil affairs (CONTRACTS §2.1).
    Roster(ImportFileArgs),
    /// Stops, suspensions, reductions, gradual exits, arrears, recoveries, blacklists (§2.2).
    Decisions(ImportFileArgs),
    /// Registered staff relatives (§2.3, P15).
    StaffRelatives(ImportFileArgs),
    /// Treasury vouchers (§2.4).
    Treasury(ImportFileArgs),
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Compute a run from the data as it stands.
    Create(RunCreateArgs),
    /// State, totals by region/area/component/bank, flags, approvals.
    Show(RunIdArgs),
    /// One line per household (CONTRACTS §4).
    Lines(RunLinesArgs),
    /// Compare a run with the previous month's run of the same scope.
    Diff(RunDiffArgs),
    /// Approve a run with the approver's own key (CONTRACTS §5).
    Approve(RunApproveArgs),
    /// Cancel a run that has not been exported, with a reason.
    Cancel(RunCancelArgs),
    /// Signed payment files for every bank route (CONTRACTS §3).
    Export(RunExportArgs),
}

#[derive(Debug, Args)]
pub struct RunCreateArgs {
    #[arg(long)]
    pub month: String,
    #[arg(long, default_value = "dibao")]
    pub programme: String,
    /// Region code prefix the run covers; default every region.
    #[arg(long)]
    pub region: Option<String>,
    /// Day the banks credit households; default the configured pay day of the month.
    #[arg(long)]
    pub pay_date: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunIdArgs {
    pub run: String,
}

#[derive(Debug, Args)]
pub struct RunLinesArgs {
    pub run: String,
    #[arg(long, default_value = "csv")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct RunDiffArgs {
    pub run: String,
    /// Report households whose payable changed by more than this share (e.g. 0.20).
    #[arg(long, default_value = "0.20")]
    pub threshold: String,
}

#[derive(Debug, Args)]
pub struct RunApproveArgs {
    pub run: String,
    /// The approver's PKCS#8 private key (mode 0600).
    #[arg(long)]
    pub key: PathBuf,
    /// Print the base64 signature instead of recording it (for the service's page or API).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct RunCancelArgs {
    pub run: String,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct RunExportArgs {
    pub run: String,
    #[arg(long)]
    pub out: PathBuf,
    /// Signing key; default the configured one.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ApproverCommand {
    /// Register a person who may approve runs, with their SPKI PEM public key.
    Add(ApproverAddArgs),
}

#[derive(Debug, Args)]
pub struct ApproverAddArgs {
    pub name: String,
    #[arg(long)]
    pub public_key: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ReturnsCommand {
    /// Ingest bank result files (R1, R1B, pain.002, camt.054).
    Ingest(ReturnsIngestArgs),
}

#[derive(Debug, Args)]
pub struct ReturnsIngestArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Layout name; detected when absent.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    pub run: String,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain end to end.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// A PKCS#8 PEM private key (mode 0600) and its SPKI PEM public key in FILE.pub.pem.
    Generate(KeysGenerateArgs),
}

#[derive(Debug, Args)]
pub struct KeysGenerateArgs {
    /// ed25519 or ecdsa-p256
    #[arg(long)]
    pub alg: String,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the HTTP API and page listen on (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a bearer token to the person named by `--user`; printed once.
    Create(TokenCreateArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// operator, approver or auditor
    #[arg(long)]
    pub role: String,
}
