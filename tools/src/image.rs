//! `shadowctl image build | inspect | verify | keygen`: firmware images (`hw::image`) as raw
//! binary or Intel HEX.

use std::path::{Path, PathBuf};

use serde::Serialize;
use shadownet_hw::image::{self, HEADER_LEN, ImageError, ImageHeader, Target};

use crate::ihex::{self, IhexError};

/// Why an image command failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageToolError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The input ELF cannot be flattened.
    #[error("{path}: {what}")]
    Elf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// An Intel HEX file is damaged.
    #[error("{path}: {problem}")]
    Hex {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        problem: IhexError,
    },
    /// A key file is not a key.
    #[error("{path}: not a key: expected 32 raw bytes or 64 hex digits")]
    Key {
        /// The file.
        path: PathBuf,
    },
    /// The image does not verify.
    #[error("{path}: {problem}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: ImageError,
    },
}

/// Output format of `image build`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Raw binary: header then payload.
    Bin,
    /// Intel HEX of the same bytes, from address 0 (the start of a slot).
    Ihex,
}

/// What `image build` is asked for.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// ELF or raw binary.
    pub input: PathBuf,
    /// Target.
    pub target: Target,
    /// Build id.
    pub build_id: u32,
    /// ed25519 secret seed file.
    pub sign_key: Option<PathBuf>,
    /// Output file.
    pub out: PathBuf,
    /// Output format.
    pub format: Format,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ImageToolError + '_ {
    move |error| ImageToolError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A payload with where it loads and starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Payload {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Load address (ELF: lowest loadable segment's physical address; raw: 0).
    pub load_addr: u32,
    /// Entry point (ELF: e_entry; raw: 0).
    pub entry: u32,
    /// Whether it came from an ELF.
    pub from_elf: bool,
}

/// Reads an input: an ELF's loadable segments flattened (gaps filled with 0xFF, what erased
/// flash holds), or a raw binary as it is.
pub fn load_input(path: &Path, target: Target) -> Result<Payload, ImageToolError> {
    use object::{Object, ObjectSegment};
    let data = std::fs::read(path).map_err(io(path))?;
    if !data.starts_with(b"\x7fELF") {
        return Ok(Payload {
            bytes: data,
            load_addr: 0,
            entry: 0,
            from_elf: false,
        });
    }
    let elf_err = |what: String| ImageToolError::Elf {
        path: path.to_path_buf(),
        what,
    };
    let file =
        object::File::parse(&*data).map_err(|e| elf_err(format!("not a readable ELF: {e}")))?;
    if target == Target::Riscv32imac && file.architecture() != object::Architecture::Riscv32 {
        return Err(elf_err(format!(
            "ELF is for {:?}, not RISC-V 32 (target riscv32imac)",
            file.architecture()
        )));
    }
    let mut segs = Vec::new();
    for seg in file.segments() {
        let bytes = seg
            .data()
            .map_err(|e| elf_err(format!("segment at {:#x}: {e}", seg.address())))?;
        if bytes.is_empty() {
            continue;
        }
        segs.push((seg.address(), bytes));
    }
    if segs.is_empty() {
        return Err(elf_err("no loadable segment with contents".into()));
    }
    segs.sort_by_key(|s| s.0);
    let lo = segs[0].0;
    let hi = segs
        .iter()
        .map(|(a, b)| a + b.len() as u64)
        .max()
        .unwrap_or(lo);
    if hi - lo > 64 * 1024 * 1024 || hi > u64::from(u32::MAX) {
        return Err(elf_err(format!(
            "loadable segments span {lo:#x}..{hi:#x}: too far apart for one image"
        )));
    }
    let mut bytes = vec![0xFF; (hi - lo) as usize];
    for (a, b) in segs {
        let at = (a - lo) as usize;
        bytes[at..at + b.len()].copy_from_slice(b);
    }
    let entry = u32::try_from(file.entry())
        .map_err(|_| elf_err(format!("entry point {:#x} beyond 32 bits", file.entry())))?;
    Ok(Payload {
        bytes,
        load_addr: lo as u32,
        entry,
        from_elf: true,
    })
}

/// Reads a 32-byte key: raw, or 64 hex digits (whitespace around them ignored).
pub fn read_key(path: &Path) -> Result<[u8; 32], ImageToolError> {
    let data = std::fs::read(path).map_err(io(path))?;
    let bad = || ImageToolError::Key {
        path: path.to_path_buf(),
    };
    if data.len() == 32 {
        let mut k = [0; 32];
        k.copy_from_slice(&data);
        return Ok(k);
    }
    let text = std::str::from_utf8(&data).map_err(|_| bad())?.trim();
    if text.len() != 64 {
        return Err(bad());
    }
    let mut k = [0; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(k)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a new signing key (`path`, 64 hex digits of a random seed) and its public key
/// (`path` + `.pub`). Returns the public key.
pub fn keygen(path: &Path) -> Result<[u8; 32], ImageToolError> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    let random = Path::new("/dev/urandom");
    std::fs::File::open(random)
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(io(random))?;
    std::fs::write(path, format!("{}\n", hex(&seed))).map_err(io(path))?;
    let public = image::public_key(&seed);
    let pub_path = path.with_extension(match path.extension() {
        Some(e) => format!("{}.pub", e.to_string_lossy()),
        None => "pub".into(),
    });
    std::fs::write(&pub_path, format!("{}\n", hex(&public))).map_err(io(&pub_path))?;
    Ok(public)
}

/// Builds an image file. Returns its header.
pub fn build(opts: &BuildOptions) -> Result<ImageHeader, ImageToolError> {
    let payload = load_input(&opts.input, opts.target)?;
    let mut header = ImageHeader::for_payload(
        &payload.bytes,
        opts.target,
        opts.build_id,
        payload.load_addr,
        payload.entry,
    )
    .map_err(|problem| ImageToolError::Image {
        path: opts.input.clone(),
        problem,
    })?;
    if let Some(k) = &opts.sign_key {
        header.sign(&read_key(k)?);
    }
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&payload.bytes);
    let out = match opts.format {
        Format::Bin => bytes,
        Format::Ihex => ihex::write(&bytes, 0, None).into_bytes(),
    };
    std::fs::write(&opts.out, out).map_err(io(&opts.out))?;
    Ok(header)
}

/// Reads an image file, raw or Intel HEX (recognised by its leading ':').
pub fn read_image(path: &Path) -> Result<Vec<u8>, ImageToolError> {
    let data = std::fs::read(path).map_err(io(path))?;
    if data.first() == Some(&b':') {
        let text = String::from_utf8_lossy(&data);
        let h = ihex::read(&text).map_err(|problem| ImageToolError::Hex {
            path: path.to_path_buf(),
            problem,
        })?;
        return Ok(h.bytes);
    }
    Ok(data)
}

/// What `image inspect` shows.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// File inspected.
    pub file: String,
    /// Bytes of the image (header and payload).
    pub image_len: usize,
    /// Target.
    pub target: String,
    /// Build id.
    pub build_id: u32,
    /// Payload length.
    pub payload_len: u32,
    /// Load address.
    pub load_addr: String,
    /// Entry point.
    pub entry: String,
    /// Payload CRC32.
    pub payload_crc32: String,
    /// Payload SHA-256.
    pub payload_sha256: String,
    /// Signed.
    pub signed: bool,
    /// Key id of the signer.
    pub key_id: Option<String>,
    /// Header CRC (what boot records name).
    pub header_crc32: String,
    /// `null` when the payload verifies against the header; otherwise what is wrong.
    pub payload_problem: Option<String>,
}

impl Inspection {
    /// Human-readable lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("image {} ({} bytes)\n", self.file, self.image_len));
        s.push_str(&format!("  target        {}\n", self.target));
        s.push_str(&format!("  build id      {}\n", self.build_id));
        s.push_str(&format!("  payload       {} bytes\n", self.payload_len));
        s.push_str(&format!("  load address  {}\n", self.load_addr));
        s.push_str(&format!("  entry         {}\n", self.entry));
        s.push_str(&format!("  CRC32         {}\n", self.payload_crc32));
        s.push_str(&format!("  SHA-256       {}\n", self.payload_sha256));
        s.push_str(&format!("  header CRC32  {}\n", self.header_crc32));
        match &self.key_id {
            Some(k) => s.push_str(&format!("  signed        yes, key id {k}\n")),
            None => s.push_str("  signed        no\n"),
        }
        match &self.payload_problem {
            None => s.push_str("  payload       verifies (length, CRC32, SHA-256)\n"),
            Some(p) => s.push_str(&format!("  payload       DOES NOT VERIFY: {p}\n")),
        }
        s
    }
}

/// Reads an image's header (which must parse) and checks its payload.
pub fn inspect(path: &Path) -> Result<Inspection, ImageToolError> {
    let bytes = read_image(path)?;
    let err = |problem| ImageToolError::Image {
        path: path.to_path_buf(),
        problem,
    };
    let h = ImageHeader::parse(&bytes).map_err(err)?;
    let problem = h
        .verify_payload(&bytes[HEADER_LEN..])
        .err()
        .map(|e| e.to_string());
    Ok(Inspection {
        file: path.display().to_string(),
        image_len: bytes.len(),
        target: h.target.name().into(),
        build_id: h.build_id,
        payload_len: h.payload_len,
        load_addr: format!("{:#010x}", h.load_addr),
        entry: format!("{:#010x}", h.entry),
        payload_crc32: format!("{:#010x}", h.payload_crc),
        payload_sha256: hex(&h.payload_sha),
        signed: h.signed(),
        key_id: h.signature.map(|(id, _)| hex(&id)),
        header_crc32: format!("{:#010x}", h.header_crc()),
        payload_problem: problem,
    })
}

/// Verifies an image file: header, payload length, CRC32, SHA-256, and with `key` (a public
/// key file) the signature.
pub fn verify(path: &Path, key: Option<&Path>) -> Result<ImageHeader, ImageToolError> {
    let bytes = read_image(path)?;
    let public = key.map(read_key).transpose()?;
    image::verify(&bytes, public.as_ref()).map_err(|problem| ImageToolError::Image {
        path: path.to_path_buf(),
        problem,
    })
}

/// `shadowctl image …`.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Build an image from an ELF (loadable segments flattened) or a raw binary.
    Build {
        /// ELF or raw binary payload.
        #[arg(long)]
        input: PathBuf,
        /// What the payload runs on: riscv32imac or host.
        #[arg(long, value_parser = parse_target)]
        target: Target,
        /// Build id recorded in the header.
        #[arg(long)]
        build_id: u32,
        /// ed25519 secret key (32 raw bytes or 64 hex digits) to sign with.
        #[arg(long)]
        sign_key: Option<PathBuf>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "bin")]
        format: Format,
    },
    /// Show an image's header and whether its payload verifies.
    Inspect {
        /// Image file (raw or Intel HEX).
        file: PathBuf,
    },
    /// Verify an image (header, length, CRC32, SHA-256; with --key the signature); exits
    /// non-zero naming what is wrong.
    Verify {
        /// Image file (raw or Intel HEX).
        file: PathBuf,
        /// ed25519 public key (32 raw bytes or 64 hex digits) the signature must verify with.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Make a signing key (FILE) and its public key (FILE.pub).
    Keygen {
        /// Secret key file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::from_name(s).ok_or_else(|| format!("unknown target '{s}' (riscv32imac or host)"))
}

impl ImageCommand {
    /// Runs the command, printing its result on stdout.
    /// `json`: print JSON (the global `--json` flag).
    pub fn run(self, json: bool) -> Result<(), ImageToolError> {
        match self {
            ImageCommand::Build {
                input,
                target,
                build_id,
                sign_key,
                out,
                format,
            } => {
                let h = build(&BuildOptions {
                    input,
                    target,
                    build_id,
                    sign_key,
                    out: out.clone(),
                    format,
                })?;
                println!(
                    "{}: {} image, build {}, {} payload bytes, CRC32 {:#010x}{}",
                    out.display(),
                    h.target,
                    h.build_id,
                    h.payload_len,
                    h.payload_crc,
                    if h.signed() { ", signed" } else { "" }
                );
            }
            ImageCommand::Inspect { file } => {
                let i = inspect(&file)?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&i)
                            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                    );
                } else {
                    print!("{}", i.render());
                }
            }
            ImageCommand::Verify { file, key } => {
                let h = verify(&file, key.as_deref())?;
                println!(
                    "{}: OK (build {}, {} payload bytes, CRC32 and SHA-256 match{})",
                    file.display(),
                    h.build_id,
                    h.payload_len,
                    if key.is_some() {
                        ", signature verifies"
                    } else {
                        ""
                    }
                );
            }
            ImageCommand::Keygen { out } => {
                let public = keygen(&out)?;
                println!(
                    "{}: secret key; public key {} (key id {})",
                    out.display(),
                    hex(&public),
                    hex(&image::key_id(&public))
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elf_is_flattened_and_checked_against_the_target() {
        // The test executable itself is an ELF for the build machine.
        let exe = std::env::current_exe().expect("test executable");
        let p = load_input(&exe, Target::Host).expect("host ELF flattens");
        assert!(p.from_elf);
        assert!(!p.bytes.is_empty());
        assert!(
            p.entry >= p.load_addr,
            "entry inside or after the first segment"
        );
        let err = load_input(&exe, Target::Riscv32imac).expect_err("not RISC-V");
        assert!(err.to_string().contains("not RISC-V 32"), "{err}");
    }
}
