"""Render a facelift primitive scene with Blender Cycles (run by benchmarks/synth.py in a separate Python
that has `bpy`: `pip install --no-deps bpy numpy` in its own virtual environment).

    python _cycles_render.py scene.json out.json

scene.json: {"primitives": [{"kind", "l2w" (4x4), "colour", "roughness", "subsurface", "op", "group",
"hair"}], "cameras": [{"c2w" (OpenCV 4x4), "fov_deg"}], "resolution", "samples", "threads",
"sun_dir", "sun_strength", "sky"}. The same geometry as facelift's ray caster: Blender's UV sphere (radius 1),
cube (size 2), cylinder (radius 1, depth 2) and cone (radius 1 -> 0, depth 2) are the canonical shapes, placed
by the same local-to-world matrices; carving primitives become Boolean difference modifiers; skin gets
Principled subsurface scattering and hair a strand-like noise texture with anisotropic specular.
Writes {"seconds_per_frame": [...], "setup_seconds": ...}.
"""

import json
import sys
import time

import bpy  # noqa: I001  (only available in the benchmark's own environment)
from mathutils import Matrix


def main(scene_path: str, out_path: str) -> None:
    spec = json.load(open(scene_path))
    t0 = time.perf_counter()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = spec["samples"]
    scene.cycles.use_denoising = False
    scene.render.threads_mode = "FIXED"
    scene.render.threads = spec["threads"]
    scene.render.resolution_x = scene.render.resolution_y = spec["resolution"]
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"

    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs[0].default_value = (*spec["sky"], 1.0)
    scene.world = world
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = spec["sun_strength"]
    sun.data.angle = 0.1
    sun.rotation_mode = "QUATERNION"
    sun.rotation_quaternion = Matrix.Identity(3).to_quaternion()  # replaced below
    from mathutils import Vector

    sun.rotation_quaternion = Vector(spec["sun_dir"]).to_track_quat("Z", "Y")
    scene.collection.objects.link(sun)

    adds, subs = [], []
    for i, p in enumerate(spec["primitives"]):
        kind = p["kind"]
        if kind == 0:
            bpy.ops.mesh.primitive_uv_sphere_add(segments=48, ring_count=24, radius=1.0)
        elif kind == 1:
            bpy.ops.mesh.primitive_cube_add(size=2.0)
        elif kind == 2:
            bpy.ops.mesh.primitive_cylinder_add(vertices=48, radius=1.0, depth=2.0)
        else:
            bpy.ops.mesh.primitive_cone_add(vertices=48, radius1=1.0, radius2=0.0, depth=2.0)
        obj = bpy.context.active_object
        obj.matrix_world = Matrix(p["l2w"])
        bpy.ops.object.shade_smooth()
        mat = bpy.data.materials.new(f"m{i}")
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*p["colour"], 1.0)
        bsdf.inputs["Roughness"].default_value = p["roughness"]
        if p["subsurface"] > 0:
            bsdf.inputs["Subsurface Weight"].default_value = 0.3 * p["subsurface"]
            bsdf.inputs["Subsurface Radius"].default_value = (0.05, 0.02, 0.01)
        if p["hair"]:
            nodes, links = mat.node_tree.nodes, mat.node_tree.links
            noise = nodes.new("ShaderNodeTexNoise")
            noise.inputs["Scale"].default_value = 40.0
            mapping = nodes.new("ShaderNodeMapping")
            mapping.inputs["Scale"].default_value = (1.0, 1.0, 0.06)  # strands along z
            coords = nodes.new("ShaderNodeTexCoord")
            ramp = nodes.new("ShaderNodeValToRGB")
            ramp.color_ramp.elements[0].color = (*[c * 0.6 for c in p["colour"]], 1.0)
            ramp.color_ramp.elements[1].color = (*[min(1.0, c * 1.5) for c in p["colour"]], 1.0)
            links.new(coords.outputs["Object"], mapping.inputs["Vector"])
            links.new(mapping.outputs["Vector"], noise.inputs["Vector"])
            links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
            links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
            bsdf.inputs["Anisotropic"].default_value = 0.8
        obj.data.materials.append(mat)
        (subs if p["op"] == 1 else adds).append((obj, p["group"]))
    for sub, group in subs:
        for add, g in adds:
            if g == group:
                mod = add.modifiers.new("carve", "BOOLEAN")
                mod.operation = "DIFFERENCE"
                mod.object = sub
        sub.hide_render = True

    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    flip = Matrix(((1, 0, 0, 0), (0, -1, 0, 0), (0, 0, -1, 0), (0, 0, 0, 1)))  # OpenCV -> Blender camera axes
    setup = time.perf_counter() - t0
    times = []
    for i, c in enumerate(spec["cameras"]):
        cam.data.angle = c["fov_deg"] * 3.141592653589793 / 180
        cam.matrix_world = Matrix(c["c2w"]) @ flip
        scene.render.filepath = spec.get("image_prefix", "/tmp/cycles_") + f"{i:03d}.png"
        start = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        times.append(time.perf_counter() - start)
    json.dump({"seconds_per_frame": times, "setup_seconds": setup, "blender": bpy.app.version_string}, open(out_path, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
