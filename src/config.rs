//! `disburse.toml`: the `[policy]` section exactly as CONTRACTS §2.5 names it, and the
//! project's own sections (`[approval]`, `[flags]`, `[run]`, `[[routes]]`, `[keys]`), each with working
//! built-in defaults so a file holding only `[policy]` is complete. A bad file is
//! refused with the key and the reason. Pure: the caller reads the text.

use crate::domain::household::Area;
use crate::domain::money::Fen;
use crate::domain::month::Month;
use crate::policy::{FlagAction, Policy, Rounding, Standard, Supplement, SupplementRule};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::str::FromStr;

/// Why a configuration was refused: the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn config_error(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The whole configuration, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub policy: Policy,
    pub approval: ApprovalConfig,
    pub run: RunConfig,
    /// Bank routes for export, longest `bank_prefix` first (CONTRACTS §3).
    pub routes: Vec<Route>,
    pub keys: KeysConfig,
    /// The whole file as TOML, for sections other modules read (schedule, inbox).
    pub raw: toml::Table,
}

/// One bank route: which payments go in which layout, from which payer account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Prefix of the household's CNAPS bank code; `""` matches every bank.
    pub bank_prefix: String,
    /// A payment layout's name in `bank-formats/`.
    pub layout: String,
    pub payer_account: String,
    pub payer_name: String,
    /// 12-digit CNAPS code of the payer's branch.
    pub payer_bank_code: String,
    /// Most payments in one file (at most `ROUTE_MAX_RECORDS_LIMIT`).
    pub max_records: u32,
    /// Largest total of one file, if the bank sets one.
    pub max_amount: Option<Fen>,
}

/// Layout A's `seq` is 6 digits, so no file of any route carries more than this.
pub const ROUTE_MAX_RECORDS_LIMIT: u32 = 999_999;
/// Records per file when a route does not say.
pub const ROUTE_MAX_RECORDS_DEFAULT: u32 = 50_000;

/// Signing keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeysConfig {
    /// The default key for `run export` (PKCS#8 PEM, mode 0600).
    pub signing_key: Option<std::path::PathBuf>,
}

/// How many distinct approvers a run needs (CONTRACTS §5).
#[derive(Clone, Debug)]
pub struct ApprovalConfig {
    pub approvers_required: u32,
    /// Runs paying more than this need `approvers_required_above`.
    pub threshold: Fen,
    pub approvers_required_above: u32,
    /// FAILURES #13: a run whose total moves by more than this share from the previous
    /// month's run of the same scope needs one more distinct approver.
    pub change_share: Decimal,
}

impl ApprovalConfig {
    /// Approvers a run needs, given its total and the previous month's total (if any).
    pub fn required_for(&self, payable_total: Fen, previous_total: Option<Fen>) -> u32 {
        let by_amount = if payable_total > self.threshold {
            self.approvers_required_above
        } else {
            self.approvers_required
        };
        match previous_total {
            Some(previous) if self.moved_too_much(previous, payable_total) => by_amount + 1,
            _ => by_amount,
        }
    }

    /// Whether the total moved by more than `change_share` of the previous total.
    pub fn moved_too_much(&self, previous: Fen, now: Fen) -> bool {
        let moved = Decimal::from((now.as_i64() - previous.as_i64()).abs());
        moved > self.change_share * Decimal::from(previous.as_i64().max(1))
    }
}

/// Run defaults.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Day of the month households are paid when `--pay-date` is absent.
    pub pay_day: u32,
    /// First characters of every `end_to_end_id` (letters and digits, ≤ 4).
    pub id_prefix: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileToml {
    policy: Option<PolicyToml>,
    approval: Option<ApprovalToml>,
    flags: Option<toml::Table>,
    run: Option<RunToml>,
    routes: Option<Vec<RouteToml>>,
    keys: Option<KeysToml>,
    // These sections belong to the service and the inbox, which read them from
    // `Config::raw`; naming them here keeps `deny_unknown_fields` from refusing them.
    #[allow(dead_code)]
    schedule: Option<toml::Value>,
    #[allow(dead_code)]
    inbox: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyToml {
    taper_months_default: Option<u32>,
    recovery_cap_share: Option<String>,
    rounding: Option<String>,
    overdue_review: Option<OverdueToml>,
    standard: Option<Vec<StandardToml>>,
    supplement: Option<SupplementToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverdueToml {
    action: String,
    grace_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StandardToml {
    region: String,
    area: String,
    from: String,
    yuan_per_person: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupplementToml {
    elderly: Option<SupplementRuleToml>,
    minors: Option<SupplementRuleToml>,
    severely_disabled: Option<SupplementRuleToml>,
    seriously_ill: Option<SupplementRuleToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupplementRuleToml {
    share_of_standard: Option<String>,
    yuan: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalToml {
    approvers_required: Option<u32>,
    threshold_yuan: Option<String>,
    approvers_required_above: Option<u32>,
    change_share: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunToml {
    pay_day: Option<u32>,
    id_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteToml {
    bank_prefix: String,
    layout: String,
    payer_account: Option<String>,
    payer_name: Option<String>,
    payer_bank_code: Option<String>,
    max_records: Option<u32>,
    max_amount_yuan: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysToml {
    signing_key: Option<String>,
}

/// The payer every built-in route pays from (a route may name its own).
const DEFAULT_PAYER_NAME: &str = "某市财政局";
const DEFAULT_PAYER_ACCOUNT: &str = "110060149018001234567";
const DEFAULT_PAYER_BANK_CODE: &str = "102100099996";

/// The built-in routes (CONTRACTS §2.5): rural credit cooperatives and rural commercial
/// banks take B, city commercial banks C, every other bank A.
const DEFAULT_ROUTES: &[(&str, &str)] = &[
    ("402", "rcc-fixed-gbk"),
    ("314", "rcc-fixed-gbk"),
    ("313", "iso20022-pain001"),
    ("", "bank-pipe-gbk"),
];

/// The built-in standards: Shenyang's 2026 figures (urban 900, rural 700 yuan a person).
const DEFAULT_STANDARDS: &[(&str, &str, &str, &str)] = &[
    ("2101", "urban", "2026-01", "900.00"),
    ("2101", "rural", "2026-01", "700.00"),
];

impl Config {
    /// The built-in defaults (no file).
    pub fn builtin() -> Config {
        Config::from_toml_str("").expect("the built-in configuration is valid")
    }

    /// Parses and validates a configuration file's text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: toml::Table =
            toml::from_str(text).map_err(|error| config_error("(file)", error.message()))?;
        let file: FileToml = toml::from_str(text).map_err(|error| {
            let key = error.span().map_or("(file)".to_string(), |span| {
                text.get(span).unwrap_or("(file)").trim().to_string()
            });
            config_error(key, error.message())
        })?;
        let mut policy = parse_policy(file.policy)?;
        apply_flags(&mut policy, file.flags)?;
        Ok(Config {
            policy,
            approval: parse_approval(file.approval)?,
            run: parse_run(file.run)?,
            routes: parse_routes(file.routes)?,
            keys: KeysConfig {
                signing_key: file
                    .keys
                    .and_then(|keys| keys.signing_key)
                    .map(std::path::PathBuf::from),
            },
            raw,
        })
    }
}

fn decimal(key: &str, text: &str) -> Result<Decimal, ConfigError> {
    Decimal::from_str(text)
        .map_err(|_| config_error(key, format!("{text:?} is not a decimal number")))
}

fn share(key: &str, text: &str) -> Result<Decimal, ConfigError> {
    let value = decimal(key, text)?;
    if value < Decimal::ZERO || value > Decimal::ONE {
        return Err(config_error(key, "a share must be between 0 and 1"));
    }
    Ok(value)
}

fn yuan(key: &str, text: &str) -> Result<Fen, ConfigError> {
    Fen::parse_yuan(text).map_err(|error| config_error(key, format!("{text:?}: {error}")))
}

fn parse_policy(toml: Option<PolicyToml>) -> Result<Policy, ConfigError> {
    let toml = toml.unwrap_or(PolicyToml {
        taper_months_default: None,
        recovery_cap_share: None,
        rounding: None,
        overdue_review: None,
        standard: None,
        supplement: None,
    });
    let taper_months_default = toml.taper_months_default.unwrap_or(6);
    if !(3..=12).contains(&taper_months_default) {
        return Err(config_error(
            "policy.taper_months_default",
            "must be 3..12 (P7)",
        ));
    }
    let recovery_cap_share = share(
        "policy.recovery_cap_share",
        toml.recovery_cap_share.as_deref().unwrap_or("0.30"),
    )?;
    let rounding = match toml.rounding.as_deref().unwrap_or("fen") {
        "fen" => Rounding::Fen,
        "yuan" => Rounding::Yuan,
        other => {
            return Err(config_error(
                "policy.rounding",
                format!("{other:?}: use \"fen\" or \"yuan\""),
            ))
        }
    };
    let (overdue_action, overdue_grace_days) = match toml.overdue_review {
        None => (FlagAction::Warn, 30),
        Some(overdue) => (
            flag_action("policy.overdue_review.action", &overdue.action)?,
            overdue.grace_days,
        ),
    };
    let standards = parse_standards(toml.standard)?;
    let supplement = parse_supplement(toml.supplement)?;
    Ok(Policy {
        taper_months_default,
        recovery_cap_share,
        rounding,
        overdue_action,
        overdue_grace_days,
        standards,
        supplement,
        flag_actions: Policy::default_flag_actions(overdue_action),
        amount_flag_multiple: Decimal::from(3),
    })
}

fn parse_standards(toml: Option<Vec<StandardToml>>) -> Result<Vec<Standard>, ConfigError> {
    let entries: Vec<StandardToml> = toml.unwrap_or_else(|| {
        DEFAULT_STANDARDS
            .iter()
            .map(|(region, area, from, yuan)| StandardToml {
                region: region.to_string(),
                area: area.to_string(),
                from: from.to_string(),
                yuan_per_person: yuan.to_string(),
            })
            .collect()
    });
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let key = |name: &str| format!("policy.standard[{index}].{name}");
            if entry.region.len() > 6 || !entry.region.bytes().all(|b| b.is_ascii_digit()) {
                return Err(config_error(
                    key("region"),
                    "a region code prefix: up to 6 digits",
                ));
            }
            let area = Area::parse(&entry.area)
                .ok_or_else(|| config_error(key("area"), "urban or rural"))?;
            let from =
                Month::parse(&entry.from).map_err(|e| config_error(key("from"), e.to_string()))?;
            let yuan_per_person = yuan(&key("yuan_per_person"), &entry.yuan_per_person)?;
            Ok(Standard {
                region_prefix: entry.region,
                area,
                from,
                yuan_per_person,
            })
        })
        .collect()
}

fn parse_supplement(toml: Option<SupplementToml>) -> Result<Supplement, ConfigError> {
    let default_share = |text: &str| SupplementRuleToml {
        share_of_standard: Some(text.into()),
        yuan: None,
    };
    let toml = toml.unwrap_or(SupplementToml {
        elderly: Some(default_share("0.10")),
        minors: Some(default_share("0.10")),
        severely_disabled: Some(default_share("0.30")),
        seriously_ill: Some(SupplementRuleToml {
            share_of_standard: None,
            yuan: Some("100.00".into()),
        }),
    });
    let rule =
        |name: &str, rule: Option<SupplementRuleToml>| -> Result<SupplementRule, ConfigError> {
            let key = format!("policy.supplement.{name}");
            match rule {
                None => Ok(SupplementRule::None),
                Some(SupplementRuleToml {
                    share_of_standard: Some(text),
                    yuan: None,
                }) => Ok(SupplementRule::ShareOfStandard(share(&key, &text)?)),
                Some(SupplementRuleToml {
                    share_of_standard: None,
                    yuan: Some(text),
                }) => Ok(SupplementRule::Fixed(yuan(&key, &text)?)),
                Some(_) => Err(config_error(
                    key,
                    "give exactly one of share_of_standard or yuan",
                )),
            }
        };
    Ok(Supplement {
        elderly: rule("elderly", toml.elderly)?,
        minors: rule("minors", toml.minors)?,
        severely_disabled: rule("severely_disabled", toml.severely_disabled)?,
        seriously_ill: rule("seriously_ill", toml.seriously_ill)?,
    })
}

fn flag_action(key: &str, text: &str) -> Result<FlagAction, ConfigError> {
    match text {
        "warn" => Ok(FlagAction::Warn),
        "hold" => Ok(FlagAction::Hold),
        other => Err(config_error(
            key,
            format!("{other:?}: use \"warn\" or \"hold\""),
        )),
    }
}

/// `[flags]`: `NAME = "warn" | "hold"` for each flag, and `amount_multiple = "3"`.
fn apply_flags(policy: &mut Policy, flags: Option<toml::Table>) -> Result<(), ConfigError> {
    for (name, value) in flags.unwrap_or_default() {
        let key = format!("flags.{name}");
        let text = value
            .as_str()
            .ok_or_else(|| config_error(&key, "must be a string"))?;
        if name == "amount_multiple" {
            policy.amount_flag_multiple = decimal(&key, text)?;
            continue;
        }
        let action = flag_action(&key, text)?;
        let slot = policy
            .flag_actions
            .iter_mut()
            .find(|(flag, _)| *flag == name)
            .ok_or_else(|| config_error(&key, "no such flag"))?;
        slot.1 = action;
    }
    Ok(())
}

fn parse_approval(toml: Option<ApprovalToml>) -> Result<ApprovalConfig, ConfigError> {
    let toml = toml.unwrap_or(ApprovalToml {
        approvers_required: None,
        threshold_yuan: None,
        approvers_required_above: None,
        change_share: None,
    });
    let approval = ApprovalConfig {
        approvers_required: toml.approvers_required.unwrap_or(1),
        threshold: yuan(
            "approval.threshold_yuan",
            toml.threshold_yuan.as_deref().unwrap_or("1000000.00"),
        )?,
        approvers_required_above: toml.approvers_required_above.unwrap_or(2),
        change_share: share(
            "approval.change_share",
            toml.change_share.as_deref().unwrap_or("0.20"),
        )?,
    };
    if approval.approvers_required == 0
        || approval.approvers_required_above < approval.approvers_required
    {
        return Err(config_error(
            "approval",
            "at least 1 approver, and no fewer above the threshold",
        ));
    }
    Ok(approval)
}

fn parse_run(toml: Option<RunToml>) -> Result<RunConfig, ConfigError> {
    let toml = toml.unwrap_or(RunToml {
        pay_day: None,
        id_prefix: None,
    });
    let pay_day = toml.pay_day.unwrap_or(20);
    if !(1..=28).contains(&pay_day) {
        return Err(config_error("run.pay_day", "1..28, so every month has it"));
    }
    let id_prefix = toml.id_prefix.unwrap_or_else(|| "DB".to_string());
    if id_prefix.is_empty()
        || id_prefix.len() > 4
        || !id_prefix.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(config_error("run.id_prefix", "1 to 4 letters or digits"));
    }
    Ok(RunConfig { pay_day, id_prefix })
}

/// `[[routes]]`: each route validated with its key; a catch-all `""` route is required
/// so every bank code has somewhere to go. Sorted longest prefix first.
fn parse_routes(toml: Option<Vec<RouteToml>>) -> Result<Vec<Route>, ConfigError> {
    let entries = toml.unwrap_or_else(|| {
        DEFAULT_ROUTES
            .iter()
            .map(|(prefix, layout)| RouteToml {
                bank_prefix: prefix.to_string(),
                layout: layout.to_string(),
                payer_account: None,
                payer_name: None,
                payer_bank_code: None,
                max_records: None,
                max_amount_yuan: None,
            })
            .collect()
    });
    let mut routes: Vec<Route> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let route = parse_route(index, entry)?;
        if routes.iter().any(|r| r.bank_prefix == route.bank_prefix) {
            return Err(config_error(
                format!("routes[{index}].bank_prefix"),
                format!("{:?} is given twice", route.bank_prefix),
            ));
        }
        routes.push(route);
    }
    if !routes.iter().any(|route| route.bank_prefix.is_empty()) {
        return Err(config_error(
            "routes",
            "no route with bank_prefix = \"\": every bank code needs a route",
        ));
    }
    routes.sort_by(|a, b| {
        b.bank_prefix
            .len()
            .cmp(&a.bank_prefix.len())
            .then(a.bank_prefix.cmp(&b.bank_prefix))
    });
    Ok(routes)
}

fn parse_route(index: usize, entry: RouteToml) -> Result<Route, ConfigError> {
    let key = |name: &str| format!("routes[{index}].{name}");
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if entry.bank_prefix.len() > 12 || !digits(&entry.bank_prefix) {
        return Err(config_error(
            key("bank_prefix"),
            "up to 12 digits (\"\" matches every bank)",
        ));
    }
    let is_payment_layout = crate::formats::load_builtin().iter().any(|layout| {
        layout.name() == entry.layout && layout.purpose() == crate::formats::spec::Purpose::Payment
    });
    if !is_payment_layout {
        return Err(config_error(
            key("layout"),
            format!(
                "{:?} is not a payment layout in bank-formats/",
                entry.layout
            ),
        ));
    }
    let payer_account = entry
        .payer_account
        .unwrap_or_else(|| DEFAULT_PAYER_ACCOUNT.to_string());
    if payer_account.is_empty() || payer_account.len() > 32 || !digits(&payer_account) {
        return Err(config_error(key("payer_account"), "1 to 32 digits"));
    }
    let payer_name = entry
        .payer_name
        .unwrap_or_else(|| DEFAULT_PAYER_NAME.to_string());
    if payer_name.trim().is_empty() || payer_name.chars().any(|c| c.is_control() || c == '|') {
        return Err(config_error(
            key("payer_name"),
            "required, without control characters or '|'",
        ));
    }
    let payer_bank_code = entry
        .payer_bank_code
        .unwrap_or_else(|| DEFAULT_PAYER_BANK_CODE.to_string());
    if crate::domain::ids::BankCode::parse(&payer_bank_code).is_err() {
        return Err(config_error(
            key("payer_bank_code"),
            "a 12-digit CNAPS code",
        ));
    }
    let max_records = entry.max_records.unwrap_or(ROUTE_MAX_RECORDS_DEFAULT);
    if !(1..=ROUTE_MAX_RECORDS_LIMIT).contains(&max_records) {
        return Err(config_error(
            key("max_records"),
            format!("1..={ROUTE_MAX_RECORDS_LIMIT} (layout A's seq has 6 digits)"),
        ));
    }
    let max_amount = match entry.max_amount_yuan {
        None => None,
        Some(text) => {
            let amount = yuan(&key("max_amount_yuan"), &text)?;
            if amount <= Fen::ZERO {
                return Err(config_error(key("max_amount_yuan"), "must be above zero"));
            }
            Some(amount)
        }
    };
    Ok(Route {
        bank_prefix: entry.bank_prefix,
        layout: entry.layout,
        payer_account,
        payer_name,
        payer_bank_code,
        max_records,
        max_amount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_example_parses() {
        let text = r#"
[policy]
taper_months_default = 6
recovery_cap_share = "0.30"
rounding = "fen"
overdue_review = { action = "warn", grace_days = 30 }

[[policy.standard]]
region = "2101"
area = "urban"
from = "2026-01"
yuan_per_person = "900.00"

[policy.supplement]
elderly = { share_of_standard = "0.10" }
minors = { share_of_standard = "0.10" }
severely_disabled = { share_of_standard = "0.30" }
seriously_ill = { yuan = "100.00" }
"#;
        let config = Config::from_toml_str(text).unwrap();
        assert_eq!(config.policy.standards.len(), 1);
        assert_eq!(
            config.policy.supplement.seriously_ill,
            SupplementRule::Fixed(Fen::new(10_000))
        );
        assert_eq!(config.approval.approvers_required, 1);
    }

    #[test]
    fn bad_files_are_refused_with_the_key() {
        let cases = [
            ("[policy]\ntaper_months_default = 2", "policy.taper_months_default"),
            ("[policy]\nrecovery_cap_share = \"1.5\"", "policy.recovery_cap_share"),
            ("[policy]\nrounding = \"jiao\"", "policy.rounding"),
            ("[policy]\noverdue_review = { action = \"stop\", grace_days = 1 }", "policy.overdue_review.action"),
            ("[[policy.standard]]\nregion = \"21x\"\narea = \"urban\"\nfrom = \"2026-01\"\nyuan_per_person = \"900\"", "policy.standard[0].region"),
            ("[[policy.standard]]\nregion = \"21\"\narea = \"urban\"\nfrom = \"2026-13\"\nyuan_per_person = \"900\"", "policy.standard[0].from"),
            ("[policy.supplement]\nelderly = { share_of_standard = \"0.1\", yuan = \"5\" }", "policy.supplement.elderly"),
            ("[flags]\nstaff_relative = \"block\"", "flags.staff_relative"),
            ("[flags]\nnot_a_flag = \"hold\"", "flags.not_a_flag"),
            ("[run]\npay_day = 31", "run.pay_day"),
        ];
        for (text, key) in cases {
            let error = Config::from_toml_str(text).unwrap_err();
            assert_eq!(error.key, key, "{text}: {error}");
        }
        let unknown = Config::from_toml_str("[policy]\ntaper = 3").unwrap_err();
        assert!(unknown.to_string().contains("taper"), "{unknown}");
    }

    #[test]
    fn builtin_routes_follow_the_contract() {
        let config = Config::builtin();
        let layout_of = |prefix: &str| {
            config
                .routes
                .iter()
                .find(|route| route.bank_prefix == prefix)
                .map(|route| route.layout.as_str())
        };
        assert_eq!(layout_of("402"), Some("rcc-fixed-gbk"));
        assert_eq!(layout_of("314"), Some("rcc-fixed-gbk"));
        assert_eq!(layout_of("313"), Some("iso20022-pain001"));
        assert_eq!(layout_of(""), Some("bank-pipe-gbk"));
        assert_eq!(
            config.routes.last().map(|r| r.bank_prefix.as_str()),
            Some("")
        );
        assert!(config
            .routes
            .iter()
            .all(|r| r.max_records == 50_000 && r.max_amount.is_none()));
        assert_eq!(config.keys.signing_key, None);
    }

    #[test]
    fn routes_and_keys_parse() {
        let text = r#"
[[routes]]
bank_prefix = "402221"
layout = "rcc-fixed-gbk"
payer_account = "6200123456"
payer_name = "某县财政局"
payer_bank_code = "402221000054"
max_records = 1000
max_amount_yuan = "500000.00"

[[routes]]
bank_prefix = ""
layout = "iso20022-pain001"

[keys]
signing_key = "/etc/disburse/bank-signing.pem"
"#;
        let config = Config::from_toml_str(text).unwrap();
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[0].bank_prefix, "402221");
        assert_eq!(config.routes[0].max_amount, Some(Fen::new(50_000_000)));
        assert_eq!(config.routes[1].payer_name, "某市财政局");
        assert_eq!(
            config.keys.signing_key.as_deref(),
            Some(std::path::Path::new("/etc/disburse/bank-signing.pem"))
        );
    }

    #[test]
    fn bad_routes_are_refused_with_the_key() {
        let route = |extra: &str| {
            format!("[[routes]]\nbank_prefix = \"\"\nlayout = \"bank-pipe-gbk\"\n{extra}")
        };
        let cases = [
            (route("max_records = 0"), "routes[0].max_records"),
            (route("max_records = 1000000"), "routes[0].max_records"),
            (
                route("max_amount_yuan = \"0\""),
                "routes[0].max_amount_yuan",
            ),
            (
                route("max_amount_yuan = \"1.234\""),
                "routes[0].max_amount_yuan",
            ),
            (
                route("payer_bank_code = \"10210009999\""),
                "routes[0].payer_bank_code",
            ),
            (
                route("payer_account = \"62-00\""),
                "routes[0].payer_account",
            ),
            (route("payer_name = \"财政|局\""), "routes[0].payer_name"),
            (
                "[[routes]]\nbank_prefix = \"40x\"\nlayout = \"bank-pipe-gbk\"".to_string(),
                "routes[0].bank_prefix",
            ),
            (
                "[[routes]]\nbank_prefix = \"\"\nlayout = \"bank-result-pipe-gbk\"".to_string(),
                "routes[0].layout",
            ),
            (
                "[[routes]]\nbank_prefix = \"\"\nlayout = \"no-such\"".to_string(),
                "routes[0].layout",
            ),
            (
                "[[routes]]\nbank_prefix = \"402\"\nlayout = \"rcc-fixed-gbk\"".to_string(),
                "routes",
            ),
            (
                format!("{}\n{}", route(""), route("")),
                "routes[1].bank_prefix",
            ),
        ];
        for (text, key) in cases {
            let error = Config::from_toml_str(&text).unwrap_err();
            assert_eq!(error.key, key, "{text}: {error}");
        }
        let unknown = Config::from_toml_str(&route("payer = \"x\"")).unwrap_err();
        assert!(unknown.to_string().contains("payer"), "{unknown}");
    }
}
