//! The "next:" line that ends a long command's summary: what to run to look at what it made.
//! One place, so `train`, `tune`, `search` and `auto` name the follow-up commands the same way.

use std::path::Path;

/// After a study (`tune`, `search`, `auto`): the report to write and the dashboard to open.
pub fn after_study(storage: &str, study: &str) -> String {
    let storage = shell_word(storage);
    format!(
        "next: modelsmith report --storage {storage} --study {} --out {}  \
         (or watch it live: modelsmith dashboard --storage {storage})",
        shell_word(study),
        shell_word(&format!("report-{study}")),
    )
}

/// After `train`: how the saved model is checked and served.
pub fn after_train(model: &Path, data: &str) -> String {
    let model = shell_word(&model.display().to_string());
    format!(
        "next: modelsmith evaluate --model {model} --data {}  \
         (learning curve: {model}/metrics.jsonl; serve it: modelsmith serve --model {model})",
        shell_word(data)
    )
}

/// `word` as one shell word: unchanged when it is plain, single-quoted otherwise.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_and_others_are_quoted() {
        assert_eq!(shell_word("sqlite:runs/a.db"), "sqlite:runs/a.db");
        assert_eq!(shell_word("my study"), "'my study'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn study_hint_names_both_commands() {
        let line = after_study("sqlite:x.db", "digits lr");
        assert!(line.contains(
            "modelsmith report --storage sqlite:x.db --study 'digits lr' --out 'report-digits lr'"
        ));
        assert!(line.contains("modelsmith dashboard --storage sqlite:x.db"));
    }
}
