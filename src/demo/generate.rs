//! Realistic generated inputs for the demo, the tests and the benchmark: Chinese names,
//! valid resident IDs (GB 11643) and card numbers (Luhn), urban and rural households in
//! Shenyang's districts and counties, commercial banks, rural credit cooperatives
//! (`402…`) and rural commercial banks (`314…`). Deterministic for a given seed.

use crate::domain::ids::{luhn_check_digit, resident_id_check_char};
use crate::domain::money::Fen;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{self, Write};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "欧阳",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "玉兰", "建国", "淑珍", "凤兰", "海燕",
    "德胜", "春梅",
];

/// (region code, area) pairs: Shenyang urban districts and rural counties.
pub const REGIONS: &[(&str, &str)] = &[
    ("210102", "urban"),
    ("210103", "urban"),
    ("210104", "urban"),
    ("210106", "urban"),
    ("210123", "rural"),
    ("210124", "rural"),
    ("210181", "rural"),
];

/// (CNAPS bank code, card BIN) of the banks households use.
const URBAN_BANKS: &[(&str, &str)] = &[
    ("102221000018", "622202"), // ICBC
    ("105221000027", "621700"), // CCB
    ("103221000036", "622848"), // ABC
    ("313221000045", "621279"), // city commercial bank
];
const RURAL_BANKS: &[(&str, &str)] = &[
    ("402221000054", "622315"), // rural credit cooperative
    ("314221000063", "623166"), // rural commercial bank
    ("103221000036", "622848"), // ABC
];

pub const ROSTER_HEADER: &str = "household_id,region_code,area,head_name,head_id_number,members,elderly,minors,severely_disabled,seriously_ill,review_class,last_review,base_amount,employment_cost_deduction,approved_from,approval_ref,approved_by,bank_code,account_number,account_name";

/// One generated payee: what a pay line carries to a bank, for the format benchmark.
#[derive(Clone, Debug)]
pub struct GeneratedPayee {
    pub household_id: String,
    pub account_name: String,
    pub account_number: String,
    /// The household head's resident ID.
    pub id_number: String,
    /// CNAPS code of the household's bank branch.
    pub bank_code: String,
    pub amount: Fen,
}

/// A generator of households; the same seed gives the same roster.
pub struct RosterGenerator {
    rng: ChaCha8Rng,
}

/// One generated household's essentials, for writing decisions about it.
#[derive(Clone, Debug)]
pub struct GeneratedHousehold {
    pub household_id: String,
    pub region_code: String,
    pub head_id_number: String,
}

impl RosterGenerator {
    pub fn new(seed: u64) -> RosterGenerator {
        RosterGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.gen_range(0..items.len())]
    }

    pub fn name(&mut self) -> String {
        format!("{}{}", self.pick(SURNAMES), self.pick(GIVEN))
    }

    pub fn id_number(&mut self, region_code: &str) -> String {
        let year = self.rng.gen_range(1940..2005);
        let month = self.rng.gen_range(1..=12);
        let day = self.rng.gen_range(1..=28);
        let serial = self.rng.gen_range(0..1000);
        let first = format!("{region_code}{year:04}{month:02}{day:02}{serial:03}");
        let check = resident_id_check_char(first.as_bytes());
        format!("{first}{}", char::from(check))
    }

    fn card_number(&mut self, bin: &str) -> String {
        let body: String = (0..12)
            .map(|_| char::from(b'0' + self.rng.gen_range(0..10u8)))
            .collect();
        let without_check = format!("{bin}{body}");
        format!("{without_check}{}", luhn_check_digit(&without_check))
    }

    /// Writes one roster row for household number `index` approved from `approved_from`.
    pub fn write_household(
        &mut self,
        out: &mut impl Write,
        index: u64,
        approved_from: &str,
    ) -> io::Result<GeneratedHousehold> {
        let (region_code, area) = REGIONS[self.rng.gen_range(0..REGIONS.len())];
        let household_id = format!("H{region_code}{index:07}");
        let members: u32 = self.rng.gen_range(1..=5);
        let elderly = self.rng.gen_range(0..=members.min(2));
        let minors = self.rng.gen_range(0..=(members - elderly).min(2));
        let disabled = u32::from(self.rng.gen_ratio(1, 8));
        let ill = u32::from(self.rng.gen_ratio(1, 10));
        let review_class = self.pick(&["three_no", "stable", "stable", "unstable"]);
        let per_person_fen: u32 = if area == "urban" { 90_000 } else { 65_000 };
        let gap_share = self.rng.gen_range(20..=100);
        let base_fen = u64::from(per_person_fen) * u64::from(members) * gap_share / 100;
        let banks = if area == "urban" {
            URBAN_BANKS
        } else {
            RURAL_BANKS
        };
        let (bank_code, bin) = banks[self.rng.gen_range(0..banks.len())];
        let head_name = self.name();
        let head_id_number = self.id_number(region_code);
        let account_number = self.card_number(bin);
        let employment = if review_class == "unstable" {
            "200.00"
        } else {
            ""
        };
        // Reviews mostly recent, a few overdue (P3), as in a well-run district.
        let review_month = if self.rng.gen_ratio(1, 20) {
            1
        } else {
            self.rng.gen_range(9..=11)
        };
        writeln!(
            out,
            "{household_id},{region_code},{area},{head_name},{head_id_number},{members},{elderly},{minors},{disabled},{ill},{review_class},2026-{review_month:02}-15,{}.{:02},{employment},{approved_from},沈民低保〔2026〕{index}号,民政局审批科,{bank_code},{account_number},{head_name}",
            base_fen / 100,
            base_fen % 100,
        )?;
        Ok(GeneratedHousehold {
            household_id,
            region_code: region_code.to_string(),
            head_id_number,
        })
    }

    /// One payee for household number `index`, drawn like a roster row (region, bank,
    /// name, ID, card, a monthly amount of 20–100 % of the standard's gap), without
    /// the roster's policy columns. Same seed, same payees.
    pub fn payee(&mut self, index: u64) -> GeneratedPayee {
        let (region_code, area) = REGIONS[self.rng.gen_range(0..REGIONS.len())];
        let members: i64 = self.rng.gen_range(1..=5);
        let per_person_fen: i64 = if area == "urban" { 90_000 } else { 65_000 };
        let gap_share: i64 = self.rng.gen_range(20..=100);
        let banks = if area == "urban" {
            URBAN_BANKS
        } else {
            RURAL_BANKS
        };
        let (bank_code, bin) = banks[self.rng.gen_range(0..banks.len())];
        let account_name = self.name();
        GeneratedPayee {
            household_id: format!("H{region_code}{index:07}"),
            id_number: self.id_number(region_code),
            account_number: self.card_number(bin),
            account_name,
            bank_code: bank_code.to_string(),
            amount: Fen::new(per_person_fen * members * gap_share / 100),
        }
    }

    /// Writes a whole roster with a header; returns the households.
    pub fn write_roster(
        &mut self,
        out: &mut impl Write,
        households: u64,
        approved_from: &str,
    ) -> io::Result<Vec<GeneratedHousehold>> {
        writeln!(out, "{ROSTER_HEADER}")?;
        (1..=households)
            .map(|index| self.write_household(out, index, approved_from))
            .collect()
    }

    /// Writes the same roster as `write_roster` without keeping the households, so a
    /// benchmark's millions of them never sit in memory at once (issue #7).
    pub fn stream_roster(
        &mut self,
        out: &mut impl Write,
        households: u64,
        approved_from: &str,
    ) -> io::Result<()> {
        writeln!(out, "{ROSTER_HEADER}")?;
        for index in 1..=households {
            self.write_household(out, index, approved_from)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::decode::InputEncoding;
    use crate::imports::records::{parse_roster_row, ROSTER_COLUMNS};
    use crate::imports::scan;

    #[test]
    fn generated_roster_passes_validation() {
        let mut csv = Vec::new();
        RosterGenerator::new(7)
            .write_roster(&mut csv, 500, "2026-01")
            .unwrap();
        let report = scan(
            &csv[..],
            InputEncoding::Utf8,
            ROSTER_COLUMNS,
            parse_roster_row,
            |_, _| Ok(()),
        );
        assert!(report.is_clean(), "{:?}", report.errors.first());
        assert_eq!(report.rows, 500);
        let mut again = Vec::new();
        RosterGenerator::new(7)
            .write_roster(&mut again, 500, "2026-01")
            .unwrap();
        assert_eq!(csv, again, "same seed, same roster");
        let mut streamed = Vec::new();
        RosterGenerator::new(7)
            .stream_roster(&mut streamed, 500, "2026-01")
            .unwrap();
        assert_eq!(csv, streamed, "streaming writes the same roster");
    }
}
