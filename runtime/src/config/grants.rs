//! Per-command grants: which host functions a command may call, compiled
//! once at load time into a bit set, checked first thing in every host
//! function.

use std::fmt;

/// Every host function of the WIT contract, as `interface.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFn {
    ChatSendMessage,
    ChatReadAttachment,
    ChatFetchMessage,
    ChatSendPrivate,
    ChatEditMessage,
    VoiceJoin,
    VoiceLeave,
    VoicePlayAudio,
    VoiceSpeak,
    VoiceTranscribe,
    ModelCallModel,
    ModelTrain,
    ModelJobStatus,
    ModelPredict,
    ModelSaveDataset,
    ModelLoadDataset,
    FilesReadFile,
    FilesListDir,
    FilesArchive,
    StoreLogCorrection,
    StoreLogFeedback,
    CommandsList,
    CommandsVersions,
    CommandsReload,
    CommandsOutcomes,
}

impl HostFn {
    pub const ALL: [HostFn; 25] = [
        HostFn::ChatSendMessage,
        HostFn::ChatReadAttachment,
        HostFn::ChatFetchMessage,
        HostFn::ChatSendPrivate,
        HostFn::ChatEditMessage,
        HostFn::VoiceJoin,
        HostFn::VoiceLeave,
        HostFn::VoicePlayAudio,
        HostFn::VoiceSpeak,
        HostFn::VoiceTranscribe,
        HostFn::ModelCallModel,
        HostFn::ModelTrain,
        HostFn::ModelJobStatus,
        HostFn::ModelPredict,
        HostFn::ModelSaveDataset,
        HostFn::ModelLoadDataset,
        HostFn::FilesReadFile,
        HostFn::FilesListDir,
        HostFn::FilesArchive,
        HostFn::StoreLogCorrection,
        HostFn::StoreLogFeedback,
        HostFn::CommandsList,
        HostFn::CommandsVersions,
        HostFn::CommandsReload,
        HostFn::CommandsOutcomes,
    ];

    /// `(interface, function)` as the WIT spells them.
    pub const fn wit_name(self) -> (&'static str, &'static str) {
        match self {
            HostFn::ChatSendMessage => ("chat", "send-message"),
            HostFn::ChatReadAttachment => ("chat", "read-attachment"),
            HostFn::ChatFetchMessage => ("chat", "fetch-message"),
            HostFn::ChatSendPrivate => ("chat", "send-private"),
            HostFn::ChatEditMessage => ("chat", "edit-message"),
            HostFn::VoiceJoin => ("voice", "join"),
            HostFn::VoiceLeave => ("voice", "leave"),
            HostFn::VoicePlayAudio => ("voice", "play-audio"),
            HostFn::VoiceSpeak => ("voice", "speak"),
            HostFn::VoiceTranscribe => ("voice", "transcribe"),
            HostFn::ModelCallModel => ("model", "call-model"),
            HostFn::ModelTrain => ("model", "train"),
            HostFn::ModelJobStatus => ("model", "job-status"),
            HostFn::ModelPredict => ("model", "predict"),
            HostFn::ModelSaveDataset => ("model", "save-dataset"),
            HostFn::ModelLoadDataset => ("model", "load-dataset"),
            HostFn::FilesReadFile => ("files", "read-file"),
            HostFn::FilesListDir => ("files", "list-dir"),
            HostFn::FilesArchive => ("files", "archive"),
            HostFn::StoreLogCorrection => ("store", "log-correction"),
            HostFn::StoreLogFeedback => ("store", "log-feedback"),
            HostFn::CommandsList => ("commands", "list"),
            HostFn::CommandsVersions => ("commands", "versions"),
            HostFn::CommandsReload => ("commands", "reload"),
            HostFn::CommandsOutcomes => ("commands", "outcomes"),
        }
    }

    /// The function a component imports as `interface`.`function` (the
    /// WIT's spelling, any version), if the host has one by that name.
    /// `model.stream-model` is granted with `model.call-model`.
    pub fn from_wit(interface: &str, function: &str) -> Option<HostFn> {
        let function = if (interface, function) == ("model", "stream-model") { "call-model" } else { function };
        HostFn::ALL.into_iter().find(|f| f.wit_name() == (interface, function))
    }

    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for HostFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (interface, function) = self.wit_name();
        write!(f, "{interface}.{function}")
    }
}

/// The functions one command may call. Empty (deny everything) by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants(u32);

/// A grant string that names no interface or function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownGrant(pub String);

impl Grants {
    /// Parses `"chat"` (a whole interface) or `"files.read-file"` (one
    /// function) into the set they grant.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Grants, UnknownGrant> {
        let mut grants = Grants::default();
        for name in names {
            let name = name.as_ref();
            let matched = HostFn::ALL.iter().filter(|f| names_match(name, **f)).fold(0, |bits, f| bits | f.bit());
            if matched == 0 {
                return Err(UnknownGrant(name.to_string()));
            }
            grants.0 |= matched;
        }
        Ok(grants)
    }

    /// One function and nothing else.
    pub fn only(f: HostFn) -> Grants {
        Grants(f.bit())
    }

    pub fn allows(self, f: HostFn) -> bool {
        self.0 & f.bit() != 0
    }

    /// The functions granted, as `interface.function`.
    pub fn names(self) -> Vec<String> {
        HostFn::ALL.iter().filter(|f| self.allows(**f)).map(HostFn::to_string).collect()
    }

    /// The needs (as a guest declares them) that these grants do not cover.
    pub fn missing(self, needs: &[String]) -> Vec<&str> {
        needs
            .iter()
            .filter(|need| match Grants::parse(&[need.as_str()]) {
                Ok(wanted) => wanted.0 & !self.0 != 0,
                Err(_) => true,
            })
            .map(String::as_str)
            .collect()
    }

    /// Every interface and function name, for error messages.
    pub fn known_names() -> String {
        let mut names: Vec<String> = Vec::new();
        for f in HostFn::ALL {
            let (interface, _) = f.wit_name();
            if !names.iter().any(|n| n == interface) {
                names.push(interface.to_string());
            }
            names.push(f.to_string());
        }
        names.join(", ")
    }
}

fn names_match(name: &str, f: HostFn) -> bool {
    let (interface, function) = f.wit_name();
    match name.split_once('.') {
        None => name == interface,
        Some((i, fun)) => i == interface && fun == function,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_by_default() {
        let grants = Grants::default();
        assert!(HostFn::ALL.iter().all(|f| !grants.allows(*f)));
    }

    #[test]
    fn interface_grants_every_function_of_it() {
        let grants = Grants::parse(&["chat"]).unwrap();
        assert!(grants.allows(HostFn::ChatSendMessage));
        assert!(grants.allows(HostFn::ChatFetchMessage));
        assert!(!grants.allows(HostFn::FilesReadFile));
    }

    #[test]
    fn function_grant_is_exact() {
        let grants = Grants::parse(&["files.read-file"]).unwrap();
        assert!(grants.allows(HostFn::FilesReadFile));
        assert!(!grants.allows(HostFn::FilesListDir));
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(Grants::parse(&["chta"]), Err(UnknownGrant("chta".into())));
        assert_eq!(Grants::parse(&["chat.send"]), Err(UnknownGrant("chat.send".into())));
        assert_eq!(Grants::parse(&["chat."]), Err(UnknownGrant("chat.".into())));
    }

    #[test]
    fn missing_needs_are_listed() {
        let grants = Grants::parse(&["chat.send-message"]).unwrap();
        let needs = vec!["chat.send-message".to_string(), "store".to_string(), "bogus".to_string()];
        assert_eq!(grants.missing(&needs), vec!["store", "bogus"]);
    }
}
