//! `disburse.toml`: the `[policy]` section exactly as CONTRACTS §2.5 names it, and the
//! project's own sections (`[approval]`, `[flags]`, `[run]`), each with working
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
    /// The `[routes]` and `[keys]` sections, kept as TOML for the export module.
    pub raw: toml::Table,
}

/// How many distinct approvers a run needs (CONTRACTS §5).
#[derive(Clone, Debug)]
pub struct ApprovalConfig {
    pub approvers_required: u32,
    /// Runs paying more than this need `approvers_required_above`.
    pub threshold: Fen,
    pub approvers_required_above: u32,
}

impl ApprovalConfig {
    pub fn required_for(&self, payable_total: Fen) -> u32 {
        if payable_total > self.threshold {
            self.approvers_required_above
        } else {
            self.approvers_required
        }
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
    // These sections belong to export, the service and the inbox, which read them from
    // `Config::raw`; naming them here keeps `deny_unknown_fields` from refusing them.
    #[allow(dead_code)]
    routes: Option<toml::Value>,
    #[allow(dead_code)]
    keys: Option<toml::Value>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunToml {
    pay_day: Option<u32>,
    id_prefix: Option<String>,
}

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
    });
    let approval = ApprovalConfig {
        approvers_required: toml.approvers_required.unwrap_or(1),
        threshold: yuan(
            "approval.threshold_yuan",
            toml.threshold_yuan.as_deref().unwrap_or("1000000.00"),
        )?,
        approvers_required_above: toml.approvers_required_above.unwrap_or(2),
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
}
