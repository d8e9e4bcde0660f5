//! `!select_dataset` — turns a folder of `.txt` files into a labelled
//! dataset (`text`, `label`, `name`), stores it for `!train <folder>`,
//! archives the folder and sums it up.
//!
//! ```text
//! !select_dataset <folder> [positive|negative]
//! ```
//!
//! Without a label, subfolders named `positive` and `negative` give the
//! labels of the files in them.

use sandbot_sdk::host::{files, model};
use sandbot_sdk::{
    command, reply_with_files, split_args, Command, CommandInfo, CommandOption, Error, HostError, Invocation,
};

struct SelectDataset;

const USAGE: &str = "select_dataset <folder> [positive|negative]";
const LABELS: [&str; 2] = ["positive", "negative"];
/// The root the operator grants for datasets.
const ROOT: &str = "datasets";

impl Command for SelectDataset {
    fn describe() -> CommandInfo {
        CommandInfo::new("select_dataset", "Makes a labelled dataset from a folder of texts.", USAGE)
            .needs(&["chat.send-message", "files.list-dir", "files.read-file", "files.archive", "model.save-dataset"])
            .option(CommandOption::string("folder", "The folder of texts, in the datasets folder").required())
            .option(CommandOption::string("label", "Label every text with this").choices(&LABELS))
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let args = split_args(&invocation.args)?;
        let (folder, label) = match args.as_slice() {
            [folder] => (folder.as_str(), None),
            [folder, label] if LABELS.contains(&label.as_str()) => (folder.as_str(), Some(label.as_str())),
            _ => return Err(Error::usage(&invocation.prefix, USAGE)),
        };
        let folder = folder.trim_end_matches('/');
        let name = folder.rsplit('/').next().unwrap_or(folder);
        let mut examples = Vec::new();
        let mut bytes = 0u64;
        let mut sources = vec![(folder.to_string(), label.map(str::to_string))];
        if label.is_none() {
            for sub in LABELS {
                sources.push((format!("{folder}/{sub}"), Some(sub.to_string())));
            }
        }
        let mut found_folder = false;
        for (path, label) in sources {
            let entries = match files::list_dir(ROOT, &path) {
                Ok(entries) => entries,
                Err(HostError::NotFound(_)) => continue,
                Err(HostError::Invalid(why)) => return Err(Error::reply(format!("I can't use `{folder}`: {why}."))),
                Err(other) => return Err(other.into()),
            };
            found_folder = true;
            for entry in entries.iter().filter(|e| !e.is_dir && e.name.ends_with(".txt")) {
                let file = files::read_file(ROOT, &format!("{path}/{}", entry.name))?;
                bytes += file.data.len() as u64;
                let text = String::from_utf8_lossy(&file.data).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                examples.push(model::Example {
                    input: text,
                    output: label.clone().unwrap_or_default(),
                    label: label.clone(),
                });
            }
        }
        if !found_folder {
            return Err(Error::reply(format!("There is no folder `{folder}` in the datasets area.")));
        }
        if examples.is_empty() {
            return Err(Error::reply(format!("`{folder}` has no `.txt` files with text in them.")));
        }
        let unlabelled = examples.iter().filter(|e| e.label.is_none()).count();
        let count = model::save_dataset(name, &examples)?;
        let archive = files::archive(ROOT, folder)?;
        let mut summary = format!("Dataset `{name}`: {count} texts, {} KiB", bytes.div_ceil(1024));
        for l in LABELS {
            let n = examples.iter().filter(|e| e.label.as_deref() == Some(l)).count();
            if n > 0 {
                summary.push_str(&format!(", {n} {l}"));
            }
        }
        if unlabelled > 0 {
            summary.push_str(&format!(", {unlabelled} without a label (give one: `{}{USAGE}`)", invocation.prefix));
        }
        summary.push_str(&format!(". Train on it with `{}train {name}`.", invocation.prefix));
        reply_with_files(summary, &[archive])?;
        Ok(())
    }
}

command!(SelectDataset);
