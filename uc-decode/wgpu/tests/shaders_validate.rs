//! Parses and validates every WGSL file of `src/shaders/` with naga, the front end wgpu itself
//! uses (through wgpu's re-export, so the version is wgpu's). Needs no GPU.

use std::collections::BTreeSet;
use uc_decode_wgpu::shaders;
use wgpu::naga;

fn validate(name: &str, src: &str) -> naga::valid::ModuleInfo {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)))
}

#[test]
fn every_wgsl_file_is_known_and_every_module_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/shaders");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    let used: BTreeSet<String> = shaders::MODULES
        .iter()
        .flat_map(|m| m.2.iter().map(|f| f.to_string()))
        .collect();
    assert_eq!(
        on_disk, used,
        "every .wgsl file must be part of a module, and every module file must exist"
    );
    for f in &on_disk {
        // The library embeds the same text (include_str!).
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(shaders::file(f), Some(text.as_str()), "{f}");
    }
    // The helper file alone is a valid module (functions only).
    validate("common.wgsl", shaders::COMMON);
    for (name, entries, _) in shaders::MODULES {
        let src = shaders::module_source(name).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        validate(name, &src);
        let found: Vec<&str> = module.entry_points.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(found, entries, "{name}: entry points");
        for ep in &module.entry_points {
            assert_eq!(ep.stage, naga::ShaderStage::Compute, "{name}::{}", ep.name);
            assert_eq!(
                ep.workgroup_size,
                [uc_decode_wgpu::WORKGROUP_SIZE, 1, 1],
                "{name}::{}",
                ep.name
            );
        }
    }
}

#[test]
fn no_half_precision_types_or_conversions() {
    // DESIGN section 4 / spec: binary16 is converted with integer operations, never with
    // unpack2x16float or f16 types (which may flush subnormals), and no fused multiply-add is used.
    use naga::{Expression, MathFunction, Scalar, ScalarKind, TypeInner};
    for (name, _, _) in shaders::MODULES {
        let src = shaders::module_source(name).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        for (_, ty) in module.types.iter() {
            let scalar = match ty.inner {
                TypeInner::Scalar(s) | TypeInner::Vector { scalar: s, .. } | TypeInner::Matrix { scalar: s, .. } => s,
                _ => continue,
            };
            assert!(
                scalar
                    != Scalar {
                        kind: ScalarKind::Float,
                        width: 2
                    },
                "{name}: uses f16"
            );
        }
        let functions = module
            .functions
            .iter()
            .map(|(_, f)| f)
            .chain(module.entry_points.iter().map(|e| &e.function));
        for f in functions {
            for (_, e) in f.expressions.iter() {
                if let Expression::Math { fun, .. } = e {
                    assert!(
                        !matches!(
                            fun,
                            MathFunction::Unpack2x16float | MathFunction::Pack2x16float | MathFunction::Fma
                        ),
                        "{name}: {:?} uses {fun:?}",
                        f.name
                    );
                }
            }
        }
    }
}
