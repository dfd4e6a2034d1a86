//! Masking of personal data (P13): what may leave the process of an ID number, an
//! account number or a name. Every log line, report and error uses these.

/// `110105199001011234` → `110105********1234`: region and last four kept.
pub fn mask_id_number(id_number: &str) -> String {
    let chars: Vec<char> = id_number.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// `6222020200001234567` → `****4567`: only the last four digits.
pub fn mask_account(account_number: &str) -> String {
    let chars: Vec<char> = account_number.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

/// `张三丰` → `张**`: the family name and one star per other character.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => {
            let rest = chars.count().max(1);
            format!("{first}{}", "*".repeat(rest))
        }
    }
}

/// Masks any run of 8 or more digits (optionally ending in `X`) inside free text, so
/// that a value echoed in an error can never carry a whole ID or account number.
pub fn mask_digits_in_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let start = index;
        while index < chars.len()
            && (chars[index].is_ascii_digit()
                || (index > start && matches!(chars[index], 'X' | 'x')))
        {
            index += 1;
        }
        let run: String = chars[start..index].iter().collect();
        if run.len() >= 8 {
            out.push_str(&mask_account(&run));
        } else {
            out.push_str(&run);
        }
        if index == start {
            out.push(chars[index]);
            index += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_contracts_section_6_shows() {
        assert_eq!(mask_id_number("11010519491231002X"), "110105********002X");
        assert_eq!(mask_account("6222020200001234567"), "****4567");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("张"), "张*");
        assert_eq!(
            mask_digits_in_text("id 11010519491231002X, acct 6222020200001234567, 12 yuan"),
            "id ****002X, acct ****4567, 12 yuan"
        );
    }
}
